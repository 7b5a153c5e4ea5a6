"""The Ray executor on a local 2-CPU cluster: same bytes as one process, and workers that die."""

import importlib.util
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from brainldm.distributed import Execution, map_shards
from brainldm.features import run_feature_extraction
from brainldm.reconstruction import run_reconstruction

RAY2 = Execution(executor="ray", n_workers=2)

if importlib.util.find_spec("ray") is None:  # not imported here: see the ray_cluster fixture
    pytest.skip("needs ray (the 'ray' extra)", allow_module_level=True)

IDS = [17, 4, 250, 9, 33, 120]


def _config():
    from brainldm.config import ReconstructionConfig

    return ReconstructionConfig(num_inference_steps=4, n_samples=2, image_size=64)


@pytest.fixture(scope="module", autouse=True)
def _helpers_by_value(ray_cluster):
    """Ray workers cannot import this test module: ship its helpers by value."""
    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def _claim(marker: str, out_dir: str | None = None) -> bool:
    """Create ``marker`` unless it exists (once across processes), noting the outputs so far."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    done = {}
    if out_dir is not None:
        done = {str(p): p.stat().st_mtime_ns for p in Path(out_dir).rglob("*")
                if p.is_file() and p.suffix in (".png", ".h5")}  # fmt: skip
    os.write(fd, json.dumps(done).encode())
    os.close(fd)
    return True


@dataclass
class DieOnItem:
    """``x * x``, but the first worker to get ``item`` exits at once, once."""

    item: int
    marker: str

    def __call__(self, x):
        if x == self.item and _claim(self.marker):
            os._exit(1)
        return x * x


@dataclass
class DieAtUnetCall:
    """Load the model; its process exits at its ``n``-th U-Net call, once across workers."""

    path: str
    n: int
    marker: str
    out_dir: str

    def __call__(self):
        from brainldm.ldm import load_ldm

        ldm = load_ldm(self.path)
        calls = [0]

        def hook(module, args):
            calls[0] += 1
            if calls[0] == self.n and _claim(self.marker, self.out_dir):
                os._exit(1)

        ldm.unet.register_forward_pre_hook(hook)
        return ldm


@dataclass
class DieAtSecondBatch:
    """An image loader whose process exits when asked for its second batch, once."""

    nsd_ids: list
    images: np.ndarray
    marker: str
    out_dir: str

    def __call__(self, ids):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 2 and _claim(self.marker, self.out_dir):
            os._exit(1)
        return self.images[[self.nsd_ids.index(int(i)) for i in ids]]


def _raise_on_two(x):
    if x == 2:
        raise ValueError(f"no {x}")
    return x


def _broken_setup():
    raise FileNotFoundError("no model here")


def _always_die(x):
    os._exit(1)


def _assert_not_recomputed(marker: Path):
    """Outputs that existed when the worker was killed were kept, not written again."""
    before = json.loads(marker.read_text())
    assert before, "the worker died before any output was written"
    assert {p: Path(p).stat().st_mtime_ns for p in before} == before


def test_map_shards_retries_the_item_of_a_dead_worker(ray_cluster, tmp_path, caplog):
    marker = tmp_path / "died"
    with caplog.at_level(logging.WARNING, logger="brainldm.distributed"):
        out = map_shards(DieOnItem(3, str(marker)), range(8), execution=RAY2)
    assert out == [x * x for x in range(8)]
    assert marker.exists()
    assert "worker died on 3; retrying (1/3)" in caplog.text


def test_map_shards_errors(ray_cluster):
    with pytest.raises(ValueError, match="no 2"):  # fn's own exception, not retried
        map_shards(_raise_on_two, [1, 2, 3], execution=RAY2)
    with pytest.raises(RuntimeError, match="(?s)failed to start.*no model here"):
        map_shards(abs, [1, 2], setup=_broken_setup, execution="ray")
    with pytest.raises(RuntimeError, match=r"5: its worker died 2 times \(max_retries=1\)"):
        map_shards(_always_die, [5], execution=Execution(executor="ray", max_retries=1))


def _plus_shared(x, shared):
    return x + shared["offset"] + len(shared["big"])


def test_map_shards_shared_on_ray(ray_cluster):
    from brainldm.distributed import executor_session

    shared = {"offset": 10, "big": np.zeros(1000)}
    with executor_session("ray"):  # Ray is running already: used, not stopped
        out = map_shards(_plus_shared, range(4), execution=RAY2, shared=shared)
    assert out == [1010, 1011, 1012, 1013]
    assert ray_cluster.is_initialized()


def _encoding_problem(seed=0, n_img=100, n_test=40, n_vox=60):
    """Feature sets A, B (and a layer set of both); a third of the voxels on each, a third null."""
    from brainldm.encoding import FitOptions

    rng = np.random.default_rng(seed)
    feats = {"A": rng.standard_normal((n_img + n_test, 10)),
             "B": rng.standard_normal((n_img + n_test, 3, 4))}  # fmt: skip
    ids_tr, ids_te = np.repeat(np.arange(n_img), 2), np.arange(n_img, n_img + n_test)
    third = n_vox // 3
    Wa = rng.standard_normal((10, third)) * 0.2
    Wb = rng.standard_normal((12, third)) * 0.2

    def responses(ids, noise):
        Y = rng.standard_normal((len(ids), n_vox)) * noise
        Y[:, :third] += feats["A"][ids] @ Wa
        Y[:, third : 2 * third] += feats["B"][ids].reshape(len(ids), -1) @ Wb
        return Y

    return dict(
        train={k: v[ids_tr] for k, v in feats.items()},
        test={k: v[ids_te] for k, v in feats.items()},
        Y_train=responses(ids_tr, 1.0), Y_test=responses(ids_te, 0.6), groups=ids_tr,
        singles=["A"], pairs=[("A", "B")], layer_sets={"step": ["A", "B"]},
        options=FitOptions(n_components=8, alphas=(1.0, 10.0, 100.0, 1e3), cv=4),
    )  # fmt: skip


def test_encoding_on_ray_equals_local(ray_cluster):
    from brainldm.distributed import Execution
    from brainldm.encoding import run_encoding_analyses

    problem = _encoding_problem()
    local = run_encoding_analyses(**problem)  # one process, all voxels at once
    on_ray = Execution(executor="ray", voxel_batch_size=25, n_workers=2)
    ray = run_encoding_analyses(**problem, execution=on_ray)
    assert list(ray.results) == list(local.results) == ["A", "A+B", "B"]
    for name, ref in local.results.items():
        got = ray.results[name]
        assert (got.spaces, got.n_components) == (ref.spaces, ref.n_components)
        np.testing.assert_allclose(got.r, ref.r, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.p, ref.p, rtol=1e-3, atol=1e-7)
        np.testing.assert_allclose(got.r2, ref.r2, rtol=1e-5, atol=1e-5)
        if ref.r2_split is not None:
            np.testing.assert_allclose(got.r2_split, ref.r2_split, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got.best_alphas, ref.best_alphas)
        np.testing.assert_array_equal(got.significant, ref.significant)
    for key, ref in local.unique.items():
        np.testing.assert_allclose(ray.unique[key], ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ray.best_layers["step"], local.best_layers["step"])
    assert 0 < local.results["A"].significant.sum() < 60  # not a trivial problem


def test_reconstruction_on_ray_survives_a_killed_worker(
    ray_cluster, tiny_model_dir, tmp_path, one_thread
):
    from brainldm.ldm import load_ldm
    from brainldm.reconstruction import reconstruct

    rng = np.random.default_rng(0)
    z = rng.standard_normal((len(IDS), 4, 8, 8)).astype(np.float32) * 0.8
    c = rng.standard_normal((len(IDS), 77, 32)).astype(np.float32)
    ref = reconstruct(load_ldm(tiny_model_dir), z, c, IDS, tmp_path / "ref", config=_config())
    marker, out = tmp_path / "died", tmp_path / "ray"
    # A shard of 2 images makes its 4 zc images (3 U-Net calls each) as one batch,
    # then its z images, then c (4 calls each): the 14th call is in c.
    model = DieAtUnetCall(str(tiny_model_dir), 14, str(marker), str(out))
    index = run_reconstruction(model, z, c, IDS, out, config=_config(), execution=Execution(
        executor="ray", n_workers=2, shard_size=2))
    assert marker.exists()
    _assert_not_recomputed(marker)
    assert index.equals(ref)
    assert _files(out) == _files(tmp_path / "ref")  # PNGs, index.csv, settings.json


def test_features_on_ray_survive_a_killed_worker(ray_cluster, tiny_model_dir, tmp_path, one_thread):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (len(IDS), 48, 48, 3), dtype=np.uint8)
    captions = [[f"image {i}", f"thing {i}"] for i in range(len(IDS))]
    kwargs = dict(captions=captions, z_size=32, batch_size=2)
    run_feature_extraction(tiny_model_dir, tmp_path / "ref", IDS, images=images,
                           execution=Execution(shard_size=4), **kwargs)  # fmt: skip
    marker, out = tmp_path / "died", tmp_path / "ray"
    loader = DieAtSecondBatch(IDS, images, str(marker), str(out))
    stores = run_feature_extraction(tiny_model_dir, out, IDS, images=loader, execution=Execution(
        executor="ray", n_workers=2, shard_size=4), **kwargs)
    assert marker.exists()
    # the killed worker had written parts; finalize merged them into data.h5 (so their
    # mtimes cannot be checked); put never rewrites a stored entry
    assert any(f"{os.sep}parts{os.sep}" in p for p in json.loads(marker.read_text()))
    assert sorted(stores) == ["c", "z"] and len(stores["z"]) == len(IDS)
    assert _files(out) == _files(tmp_path / "ref")


def test_encoding_on_ray_reads_betas_and_features_from_disk(ray_cluster, tmp_path):
    # The workers read their block of voxels of on-disk betas (StoredBetas) and the PCA
    # items their feature sets by column blocks (FeatureStore.matrix): nothing is shipped.
    import h5py

    from brainldm.distributed import Execution
    from brainldm.encoding import run_encoding_analyses
    from brainldm.features import FeatureStore
    from brainldm.nsd import StoredBetas

    problem = _encoding_problem(seed=1)
    for part in ("train", "test"):  # as a float32 store holds them
        problem[part] = {k: v.astype(np.float32) for k, v in problem[part].items()}
    local = run_encoding_analyses(**problem)
    betas = {}
    with h5py.File(tmp_path / "betas.h5", "w") as f:
        for key in ("Y_train", "Y_test"):
            f.create_dataset(key, data=problem[key].astype(np.float32), chunks=(16, 8))
            betas[key] = StoredBetas(str(tmp_path / "betas.h5"), key, problem[key].shape,
                                     np.dtype(np.float32))  # fmt: skip
    ids_tr, ids_te = problem["groups"], np.arange(100, 140)
    on_disk = {}
    for name in ("A", "B"):
        store = FeatureStore(tmp_path / "features", name, {"test": 1}, dtype="float32")
        store.put(np.unique(ids_tr), problem["train"][name][::2])  # one row per image
        store.put(ids_te, problem["test"][name])
        store.consolidate()
        on_disk[name] = (store.matrix(ids_tr), store.matrix(ids_te))
    disk_problem = {**problem, **betas,
                    "train": {k: v[0] for k, v in on_disk.items()},
                    "test": {k: v[1] for k, v in on_disk.items()}}  # fmt: skip
    on_ray = Execution(executor="ray", voxel_batch_size=25, n_workers=2)
    ray = run_encoding_analyses(**disk_problem, execution=on_ray)
    for name, ref in local.results.items():
        got = ray.results[name]
        np.testing.assert_allclose(got.r, ref.r, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(got.best_alphas, ref.best_alphas)
        np.testing.assert_array_equal(got.significant, ref.significant)
