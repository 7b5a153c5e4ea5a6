"""The HDF5 feature store: parts, consolidation, lazy column reads, kills and concurrency.

(Named test_feature_store.py: tests/rating/test_store.py holds the basename test_store.)
"""

import filecmp
import json
import multiprocessing
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from brainldm.distributed import MissingOutputsError
from brainldm.features import (
    FeatureStore,
    StoreMatrix,
    fill_store,
    finalize_features,
    fixed_batches,
)

META = {"model": "abc", "size": 320}
SHAPE = (3, 4, 5)  # 3-D entries: column reads of a part cut through its first entry axis
IDS = [int(i) for i in np.random.default_rng(7).permutation(np.arange(1000, 1100))]


def compute(ids) -> np.ndarray:
    """Values of each id alone (any batching gives the same bits)."""
    rows = [np.random.default_rng(int(i)).standard_normal(SHAPE) * 100 for i in ids]
    return np.stack(rows).astype(np.float32)


def _files(store: FeatureStore) -> list[str]:
    return sorted(p.relative_to(store.path).as_posix() for p in store.path.rglob("*")
                  if p.is_file())  # fmt: skip


def _filled(folder, ids=IDS, batch_size=16, **kwargs) -> FeatureStore:
    store = FeatureStore(folder, "z", META, **kwargs)
    fill_store(store, ids, compute, batch_size=batch_size)
    return store


@pytest.mark.parametrize("dtype", [None, "float32", "float16"])
def test_round_trip(tmp_path, dtype):
    store = FeatureStore(tmp_path, "z", META, dtype=dtype)
    assert store.entry_shape is None and store.n_features is None and len(store) == 0
    values = compute(IDS[:20]).astype(np.float64)
    store.put(IDS[:20], values)
    ids = [IDS[3], IDS[0], IDS[3], IDS[19]]  # any order, repeats allowed
    got = store.get(ids)
    assert got.dtype == np.float32 and got.shape == (4, *SHAPE)
    stored = np.dtype(dtype or "float32")
    expect = values.astype(stored).astype(np.float32)  # float16: the float16 cast exactly
    np.testing.assert_array_equal(got, expect[[3, 0, 3, 19]])
    assert store.dtype == stored and store.entry_shape == SHAPE and store.n_features == 60
    assert json.loads((tmp_path / "z" / "meta.json").read_text())["dtype"] == stored.name
    with h5py.File(next((tmp_path / "z" / "parts").glob("*.h5"))) as f:
        assert f["values"].dtype == stored and f["values"].shape == (20, *SHAPE)
        assert f["ids"].dtype == np.int64
    # a reader opening the store as it is sees the same; ids sorted, membership
    again = FeatureStore(tmp_path, "z")
    assert again.dtype == stored
    np.testing.assert_array_equal(again.ids(), sorted(IDS[:20]))
    assert IDS[5] in again and IDS[50] not in again and len(again) == 20
    np.testing.assert_array_equal(again.missing([IDS[50], IDS[1], IDS[50]]), [IDS[50]])
    with pytest.raises(KeyError, match=rf"no entry for nsd_id\(s\) \[{IDS[50]}\]"):
        again.get([IDS[0], IDS[50]])


def test_put_skips_stored_ids_and_checks_the_shape(tmp_path):
    store = FeatureStore(tmp_path, "z", META)
    store.put([1, 2], compute([1, 2]))
    store.put([2, 3], compute([2, 3]) + 1)  # 2 is stored: entries are written once
    np.testing.assert_array_equal(
        store.get([2, 3]), np.stack([compute([2])[0], compute([3])[0] + 1])
    )
    assert [p.split("-")[:2] for p in _files(store) if p.startswith("parts/")] == [
        ["parts/000001", "2"], ["parts/000003", "1"]]  # fmt: skip
    store.put([1, 2, 3], compute([1, 2, 3]))  # all stored: no file
    assert len(_files(store)) == 3
    with pytest.raises(ValueError, match=r"holds entries of shape \(3, 4, 5\), not \(60,\)"):
        store.put([4], np.zeros((1, 60)))
    with pytest.raises(ValueError, match="1 nsd_ids but 2 rows"):
        store.put([4], np.zeros((2, *SHAPE)))


def test_files_grow_with_batches_not_images(tmp_path):
    store = _filled(tmp_path)
    assert _files(store) == ["meta.json", *(f"parts/{p}" for p in sorted(os.listdir(
        store.path / "parts")))] and len(_files(store)) == 1 + 7  # fmt: skip
    finalize_features(tmp_path, IDS, ["z"])
    assert _files(store) == ["data.h5", "meta.json"]


def test_consolidate_keeps_values_and_is_idempotent(tmp_path):
    store = _filled(tmp_path, IDS[:70])
    first = IDS[:70]
    before, cols = store.get(first), store.matrix(first[::-1])[:, 10:33]
    path = store.consolidate(block_bytes=1000)  # 4-row chunks, blocks of 4 rows
    assert not list((tmp_path / "z" / "parts").iterdir())
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["ids"][:], sorted(IDS[:70]))
        assert f["values"].shape == (70, 60) and f["values"].chunks == (4, 60)
        assert tuple(f.attrs["entry_shape"]) == SHAPE
    np.testing.assert_array_equal(store.get(first), before)
    np.testing.assert_array_equal(store.matrix(first[::-1])[:, 10:33], cols)
    stat = path.stat()
    assert store.consolidate() == path and path.stat().st_mtime_ns == stat.st_mtime_ns
    # entries put after a consolidation are read from their parts, then merged
    fill_store(store, IDS, compute, batch_size=16)
    # batches IDS[64:80] (its first 6 stored: a part of 10), [80:96], [96:100]
    assert sorted(int(p.split("-")[1]) for p in os.listdir(store.path / "parts")) == [4, 10, 16]
    np.testing.assert_array_equal(store.get(IDS), compute(IDS))
    store.consolidate()
    assert _files(store) == ["data.h5", "meta.json"]
    np.testing.assert_array_equal(store.get(IDS), compute(IDS))
    with h5py.File(path) as f:  # default chunks: at most 64 rows, about 1 MiB at most
        rows, cols = f["values"].chunks
        assert rows == 64 and rows * cols * 4 <= 2**20


@pytest.mark.parametrize("consolidated", [False, True])
def test_matrix_blocks_equal_get(tmp_path, consolidated):
    store = _filled(tmp_path, batch_size=16)
    if consolidated:
        store.consolidate()
    ids = IDS[50:] + IDS[:50:3] + [IDS[7]]
    matrix = store.matrix(ids)
    full = store.get(ids).reshape(len(ids), -1)
    assert isinstance(matrix, StoreMatrix)
    assert matrix.shape == (len(ids), 60) and matrix.ndim == 2 and matrix.dtype == np.float32
    for a, b in [(0, 7), (5, 40), (19, 21), (37, 60), (0, 60), (59, 60)]:
        block = matrix[:, a:b]
        assert block.dtype == np.float32
        np.testing.assert_array_equal(block, full[:, a:b])
    np.testing.assert_array_equal(matrix[3:9], full[3:9])
    np.testing.assert_array_equal(matrix[3:9, :], full[3:9])
    np.testing.assert_array_equal(matrix[::5, 3:50:7], full[::5, 3:50:7])
    np.testing.assert_array_equal(matrix[[4, 0, 4]], full[[4, 0, 4]])
    assert matrix[2, 7] == full[2, 7]
    np.testing.assert_array_equal(matrix[:, 11], full[:, 11])
    np.testing.assert_array_equal(matrix[-1], full[-1])
    np.testing.assert_array_equal(np.asarray(matrix), full)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(matrix))[:, 20:30], full[:, 20:30])
    rows = matrix.select_rows([5, 2, 5])  # still lazy
    assert isinstance(rows, StoreMatrix) and rows.shape == (3, 60)
    np.testing.assert_array_equal(rows[:, 8:19], full[[5, 2, 5], 8:19])
    with pytest.raises(KeyError, match="no entry for nsd_id"):
        store.matrix([IDS[0], 5])


def test_a_kill_between_consolidations_rename_and_deletion(tmp_path):
    store = _filled(tmp_path)
    saved = tmp_path / "saved"
    shutil.copytree(store.path / "parts", saved)
    data = store.consolidate()
    stat = data.stat()
    for part in sorted(saved.iterdir())[2:4]:  # as if the deletion had stopped early
        shutil.copy(part, store.path / "parts")
    reader = FeatureStore(tmp_path, "z")
    np.testing.assert_array_equal(reader.ids(), sorted(IDS))
    np.testing.assert_array_equal(reader.get(IDS), compute(IDS))
    np.testing.assert_array_equal(
        reader.matrix(IDS)[:, 9:17], compute(IDS).reshape(100, -1)[:, 9:17]
    )
    reader.consolidate()  # drops the parts, keeps data.h5 as it is
    assert _files(reader) == ["data.h5", "meta.json"]
    assert data.stat().st_mtime_ns == stat.st_mtime_ns
    np.testing.assert_array_equal(reader.get(IDS), compute(IDS))


_KILLED_WRITER = """
import os, sys
sys.path.insert(0, {here!r})
import h5py
from test_feature_store import IDS, META, compute
from brainldm.features import FeatureStore, fill_store

create, n_puts = h5py.Group.create_dataset, [0]

def dying(self, name, *args, **kwargs):
    if name == "values":
        n_puts[0] += 1
        if n_puts[0] == 3:  # the 3rd put dies inside its HDF5 write
            data = kwargs.pop("data")
            create(self, name, shape=data.shape, dtype=data.dtype)
            self.file.flush()
            os._exit(1)
    return create(self, name, *args, **kwargs)

h5py.Group.create_dataset = dying
fill_store(FeatureStore({folder!r}, "z", META), IDS, compute, batch_size=16)
"""


def test_a_write_killed_midway_resumes_to_identical_arrays(tmp_path):
    code = _KILLED_WRITER.format(here=str(Path(__file__).parent), folder=str(tmp_path / "run"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    parts = tmp_path / "run" / "z" / "parts"
    assert len(list(parts.glob(".tmp-*"))) == 1 and len(list(parts.glob("0*.h5"))) == 2
    store, calls = FeatureStore(tmp_path / "run", "z", META), []
    assert len(store) == 32

    def counted(ids):
        calls.append(list(ids))
        return compute(ids)

    assert fill_store(store, IDS, counted, batch_size=16) == 100 - 32
    assert calls == [list(b) for b in fixed_batches(IDS, 16)[2:]]  # only the missing batches
    finalize_features(tmp_path / "run", IDS, ["z"])
    assert not list((tmp_path / "run").rglob(".tmp-*"))
    _filled(tmp_path / "ref")
    finalize_features(tmp_path / "ref", IDS, ["z"])
    np.testing.assert_array_equal(store.get(IDS), FeatureStore(tmp_path / "ref", "z").get(IDS))
    assert filecmp.cmp(tmp_path / "run/z/data.h5", tmp_path / "ref/z/data.h5", shallow=False)


def _write_batches(folder: str, batches: list, start) -> None:
    start.wait()
    fill_store(FeatureStore(folder, "z", META), [i for b in batches for i in b], compute, 16)


def test_two_processes_write_at_once(tmp_path):
    FeatureStore(tmp_path, "z", META)
    batches = [list(b) for b in fixed_batches(IDS, 16)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_write_batches, args=(str(tmp_path), batches[k::2], start))
             for k in range(2)]  # fmt: skip
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0, 0]
    stores = finalize_features(tmp_path, IDS, ["z"])
    np.testing.assert_array_equal(stores["z"].ids(), sorted(IDS))
    np.testing.assert_array_equal(stores["z"].get(IDS), compute(IDS))
    assert _files(stores["z"]) == ["data.h5", "meta.json"]


def test_finalize_lists_missing_entries_and_leaves_the_parts(tmp_path):
    _filled(tmp_path, IDS[:30])
    with pytest.raises(MissingOutputsError, match=r"2 of 32 expected feature entries") as info:
        finalize_features(tmp_path, IDS[:32], ["z"])
    assert info.value.missing == [f"z/{IDS[30]:06d}", f"z/{IDS[31]:06d}"]
    assert not (tmp_path / "z" / "data.h5").exists()
    assert len(os.listdir(tmp_path / "z" / "parts")) == 2


def test_settings_and_dtype_are_checked(tmp_path):
    store = FeatureStore(tmp_path, "unet", META, dtype="float16")
    with pytest.raises(ValueError, match=r"other settings.*'dtype': \('float16', 'float32'\)"):
        FeatureStore(tmp_path, "unet", META, dtype="float32")
    with pytest.raises(ValueError, match=r"'dtype': \('float16', 'float32'\)"):
        FeatureStore(tmp_path, "unet", META)  # dtype None is float32
    assert FeatureStore(tmp_path, "unet").dtype == np.float16  # opened as it is
    assert FeatureStore(tmp_path, "unet", dtype=np.float16).dtype == np.float16
    with pytest.raises(ValueError, match=r"other settings.*'model': \('abc', 'xyz'\)"):
        FeatureStore(tmp_path, "unet", {**META, "model": "xyz"}, dtype="float16")
    with pytest.raises(ValueError, match="FeatureStore dtype='int8' is not valid"):
        FeatureStore(tmp_path, "other", META, dtype="int8")
    with pytest.raises(FileNotFoundError, match="no feature store"):
        FeatureStore(tmp_path, "absent")
    (tmp_path / "old").mkdir()  # the layout of one .npy per entry
    (tmp_path / "old" / "meta.json").write_text(json.dumps({"name": "old", "settings": META}))
    with pytest.raises(ValueError, match="old layout"):
        FeatureStore(tmp_path, "old")
    # float16 overflow is an error naming the store, not inf
    values = np.zeros((2, 3))
    values[1, 2] = 70000.0
    with pytest.raises(ValueError, match=r"'.*unet' holds float16.*65504.*up to 70000"):
        store.put([1, 2], values)
    assert len(store) == 0 and not list((tmp_path / "unet" / "parts").iterdir())
    store.put([1, 2], np.clip(values, -65504, 65504))
    assert store.get([2])[0, 2] == 65504
