import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brainldm.distributed import Execution, MissingOutputsError, Shard, make_shards, map_shards
from brainldm.features import FeatureStore, finalize_features, run_feature_extraction
from brainldm.reconstruction import finalize_reconstruction, run_reconstruction

# Small images keep the tiny model fast: z of 4 × 8 × 8 decodes to 64 px.
IDS = [17, 4, 250, 9, 33]


def _config():
    from brainldm.config import ReconstructionConfig

    # z_only="vae_decode": one deterministic z image, so the counts below are 2 + 1 + 2
    return ReconstructionConfig(num_inference_steps=4, n_samples=2, image_size=64,
                                z_only="vae_decode")  # fmt: skip


def _decoded(n=5):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, 4, 8, 8)).astype(np.float32) * 0.8
    c = rng.standard_normal((n, 77, 32)).astype(np.float32)
    return z, c


def _stimuli(n=5):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 48, 48, 3), dtype=np.uint8)
    captions = [[f"image {i}", f"a photo of thing {i}"][: 1 + i % 2] for i in range(n)]
    return images, captions


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_make_shards_is_by_sorted_nsd_id():
    shards = make_shards([30, 10, 20, 50, 40], 2)
    assert [s.nsd_ids for s in shards] == [(10, 20), (30, 40), (50,)]
    assert [s.rows for s in shards] == [(1, 2), (0, 4), (3,)]
    assert [s.index for s in shards] == [0, 1, 2]
    assert make_shards([50, 40, 30, 20, 10], 2)[0].nsd_ids == (10, 20)  # order does not matter
    assert str(shards[1]) == "shard 1 (2 images, nsd_id 30..40)"
    assert make_shards([], 3) == []
    with pytest.raises(ValueError, match=r"nsd_ids must be unique; repeated: \[10\]"):
        make_shards([10, 20, 10], 2)
    with pytest.raises(ValueError, match="shard_size must be a positive integer, got 0"):
        make_shards([10], 0)


def test_map_shards_local():
    calls = []

    def setup():
        calls.append("setup")
        return 10

    assert map_shards(lambda x, s: x + s, [1, 2, 3], setup=setup) == [11, 12, 13]
    assert calls == ["setup"]  # one setup per worker
    assert map_shards(abs, []) == []
    assert map_shards(divmod, [7, 9], shared=4) == [(1, 3), (2, 1)]  # fn(item, shared)
    assert map_shards(lambda x, s, sh: x + s + sh, [1], setup=setup, shared=100) == [111]
    with pytest.raises(ValueError, match="executor='local' runs one worker, got n_workers=2"):
        map_shards(abs, [1], execution=Execution(n_workers=2))
    with pytest.raises(ValueError, match="executor='dask' is not valid; allowed: 'local', 'ray'"):
        map_shards(abs, [1], execution="dask")
    with pytest.raises(TypeError, match="execution must be an Execution, 'local' or 'ray'"):
        map_shards(abs, [1], execution=3)
    assert isinstance(make_shards([1], 1)[0], Shard)


@pytest.mark.usefixtures("one_thread")  # fast on a busy machine
def test_reconstruction_equals_one_reconstruct_call(tiny_model_dir, tmp_path):
    from brainldm.ldm import load_ldm
    from brainldm.reconstruction import reconstruct

    z, c = _decoded()
    ref = reconstruct(load_ldm(tiny_model_dir), z, c, IDS, tmp_path / "ref", config=_config())
    index = run_reconstruction(tiny_model_dir, z, c, IDS, tmp_path / "run", config=_config(),
                               execution=Execution(shard_size=2))  # fmt: skip
    assert index.equals(ref)
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")
    assert len(index) == len(IDS) * 5  # zc and c: 2 samples each, z: 1


@pytest.mark.usefixtures("one_thread")
def test_reconstruction_final_check(tiny_model_dir, tmp_path):
    z, c = _decoded(3)
    ids = IDS[:3]
    out = tmp_path / "run"
    run_reconstruction(tiny_model_dir, z, c, ids, out, conditions=("zc", "z"), config=_config())
    complete = _files(out)
    # a worker killed while writing, an index overwritten by another worker, lost images
    (out / "zc" / ".tmp-123-000004_00.png").write_bytes(b"half")
    (out / "index.csv").write_text((out / "index.csv").read_text().splitlines()[0] + "\n")
    (out / "zc" / "000017_01.png").unlink()
    (out / "z" / "000250_00.png").unlink()
    with pytest.raises(MissingOutputsError, match="2 of 9 expected images are missing") as info:
        finalize_reconstruction(out, ids, ("zc", "z"), _config())
    assert info.value.missing == ["zc/000017_01.png", "z/000250_00.png"]
    assert not list(out.rglob(".tmp-*"))
    run_reconstruction(tiny_model_dir, z, c, ids, out, conditions=("zc", "z"), config=_config())
    assert _files(out) == complete


@pytest.mark.usefixtures("one_thread")
def test_features_equal_one_extract_features_call(tiny_model_dir, tmp_path):
    from brainldm.features import extract_features
    from brainldm.ldm import load_ldm

    images, captions = _stimuli()
    order = np.argsort(IDS)  # shards run ids in increasing order
    ref = extract_features(
        load_ldm(tiny_model_dir), tmp_path / "ref", np.asarray(IDS)[order],
        images=lambda ids: images[[IDS.index(i) for i in ids]],
        captions=lambda ids: [captions[IDS.index(i)] for i in ids],
        z_size=32, batch_size=2,
    )  # fmt: skip
    stores = run_feature_extraction(
        tiny_model_dir, tmp_path / "run", IDS, images=images, captions=captions, z_size=32,
        batch_size=2, execution=Execution(shard_size=4),
    )  # fmt: skip
    assert sorted(stores) == ["c", "z"]
    finalize_features(tmp_path / "ref", IDS)  # consolidated, as run_feature_extraction's
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")
    assert stores["z"].get(IDS).shape == (5, 4, 4, 4) and ref["c"].get(IDS).shape == (5, 77, 32)
    kept = [i for i in IDS if i != 9]  # the c store, less nsd_id 9
    (tmp_path / "run" / "c" / "data.h5").unlink()
    FeatureStore(tmp_path / "run", "c").put(kept, ref["c"].get(kept))
    with pytest.raises(MissingOutputsError, match=r"1 of 10 expected feature entries .* c/000009"):
        finalize_features(tmp_path / "run", IDS)


def test_bad_inputs(tiny_model_dir, tmp_path):
    z, c = _decoded()
    with pytest.raises(ValueError, match=r"features includes 'z': pass images=\.\.\."):
        run_feature_extraction(tiny_model_dir, tmp_path, IDS, captions=[["a"]] * 5)
    with pytest.raises(ValueError, match="captions has 2 rows but nsd_ids has 5"):
        run_feature_extraction(tiny_model_dir, tmp_path, IDS, features=("c",), captions=[["a"]] * 2)
    with pytest.raises(ValueError, match="text_embeddings must have one row per nsd_id"):
        run_reconstruction(tiny_model_dir, z, c[:2], IDS, tmp_path)
    with pytest.raises(ValueError, match="device='cuda' needs GPUs on the Ray workers"):
        run_reconstruction(tiny_model_dir, z, c, IDS, tmp_path, execution=Execution(
            executor="ray", device="cuda", num_gpus_per_worker=0))
    assert not list(tmp_path.iterdir())


def test_local_path_never_imports_ray(tiny_model_dir, tmp_path):
    code = (
        "import sys, numpy as np, brainldm, brainldm.distributed as d, brainldm.features as f\n"
        "assert 'ray' not in sys.modules and 'torch' not in sys.modules\n"
        "assert d.map_shards(abs, [-1]) == [1]\n"
        f"f.run_feature_extraction({str(tiny_model_dir)!r}, {str(tmp_path)!r}, [3], "
        "features=('c',), captions=[['a cat']])\n"
        "print('ray' in sys.modules)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_local_encoding_never_imports_ray():
    code = (
        "import sys, numpy as np, brainldm.encoding as e\n"
        "assert 'ray' not in sys.modules\n"
        "rng = np.random.default_rng(0)\n"
        "X, Y = rng.standard_normal((50, 4)), rng.standard_normal((50, 6))\n"
        "tr, te = {'a': X[:40], 'b': X[:40, :2]}, {'a': X[40:], 'b': X[40:, :2]}\n"
        "from brainldm.distributed import Execution\n"
        "an = e.run_encoding_analyses(tr, Y[:40], te, Y[40:], singles=['a'], pairs=[('a', 'b')],"
        " options=e.FitOptions(n_components=None, cv=3),"
        " execution=Execution(executor='local', voxel_batch_size=4))\n"
        "assert an.results['a+b'].r.shape == (6,)\n"
        "print('ray' in sys.modules)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
