"""Encoding from on-disk inputs: betas read a voxel block at a time, features by column blocks.

The streamed fit must equal the in-memory fit (r, alphas, significance), and
it must never read more than one block of voxels of the betas at once.
"""

import numpy as np
import pytest
from test_voxel_batches import _planted

from brainldm.distributed import Execution
from brainldm.encoding import FitOptions, run_encoding_analyses


class _OnDisk:
    """A 2-D array seen only through ``X[:, a:b]`` and ``select_rows``; records each read."""

    def __init__(self, values, reads):
        self.values, self.reads = np.asarray(values), reads
        self.shape = self.values.shape

    def __getitem__(self, key):
        rows, cols = key
        out = self.values[rows, cols]
        self.reads.append(out.shape)
        return out

    def select_rows(self, index):
        return _OnDisk(self.values[index], self.reads)

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read at once")


@pytest.fixture(scope="module")
def planted():
    return _planted(seed=3, n_vox=(30, 30, 70))


def _run(train, Ytr, test, Yte, groups, n_components, batch):
    return run_encoding_analyses(
        train, Ytr, test, Yte, singles=["A"], pairs=[("A", "B")], groups=groups,
        options=FitOptions(alphas=(1.0, 10.0, 100.0, 1e3), n_components=n_components),
        execution=Execution(voxel_batch_size=batch),
    )  # fmt: skip


@pytest.mark.parametrize("n_components", [None, 8])
def test_streamed_encoding_equals_the_in_memory_fit(planted, n_components):
    d = planted
    batch = 32
    in_memory = _run(d["train"], d["Ytr"], d["test"], d["Yte"], d["groups"], n_components, batch)
    y_reads, x_reads = [], []
    on_disk = _run(
        {k: _OnDisk(v, x_reads) for k, v in d["train"].items()},
        _OnDisk(d["Ytr"], y_reads),
        {k: _OnDisk(v, x_reads) for k, v in d["test"].items()},
        _OnDisk(d["Yte"], y_reads),
        d["groups"], n_components, batch,
    )  # fmt: skip
    assert list(on_disk.results) == list(in_memory.results)
    for name, a in in_memory.results.items():
        b = on_disk.results[name]
        np.testing.assert_array_equal(b.r, a.r)
        np.testing.assert_array_equal(b.best_alphas, a.best_alphas)
        np.testing.assert_array_equal(b.significant, a.significant)
        np.testing.assert_array_equal(b.r2, a.r2)
    for key in in_memory.unique:
        np.testing.assert_array_equal(on_disk.unique[key], in_memory.unique[key])
    # Betas: one voxel block per read, never all voxels; features: column blocks.
    n_voxels = d["Ytr"].shape[1]
    assert y_reads and max(shape[1] for shape in y_reads) <= batch < n_voxels
    assert x_reads


def test_significance_is_over_all_voxels_not_per_block(planted):
    # BH over the whole set: blocks of 16 voxels give the mask of one block of all.
    d = planted
    whole = _run(d["train"], d["Ytr"], d["test"], d["Yte"], d["groups"], None, None)
    reads = []
    blocks = _run(d["train"], _OnDisk(d["Ytr"], reads), d["test"], _OnDisk(d["Yte"], reads),
                  d["groups"], None, 16)  # fmt: skip
    for name, a in whole.results.items():
        np.testing.assert_array_equal(blocks.results[name].significant, a.significant)


def test_default_blocks_follow_the_memory_budget(planted, monkeypatch):
    # voxel_batch_size=None: blocks as wide as the budget allows, never all voxels when
    # they do not fit; the result is the one of explicit blocks of that size.
    from brainldm.encoding import _distribute, default_voxel_batch_size

    d = planted
    n_train, n_test = d["Ytr"].shape[0], d["Yte"].shape[0]
    widest = 12 + 16  # the pair A + B without PCA
    budget = 4 * (n_train + n_test + widest) * 25  # 25 voxels per block
    assert default_voxel_batch_size(n_train, n_test, widest, budget) == 25
    monkeypatch.setattr(_distribute, "VOXEL_BLOCK_BUDGET_BYTES", budget)
    reads = []
    default = _run(d["train"], _OnDisk(d["Ytr"], reads), d["test"], _OnDisk(d["Yte"], reads),
                   d["groups"], None, None)  # fmt: skip
    assert reads and max(shape[1] for shape in reads) == 25 < d["Ytr"].shape[1]
    explicit = _run(d["train"], d["Ytr"], d["test"], d["Yte"], d["groups"], None, 25)
    for name, a in explicit.results.items():
        np.testing.assert_array_equal(default.results[name].r, a.r)
        np.testing.assert_array_equal(default.results[name].significant, a.significant)


def test_default_block_size_examples():
    from brainldm.encoding import VOXEL_BLOCK_BUDGET_BYTES, default_voxel_batch_size

    # subj01, joint z + zc after PCA: 4 GiB / (4 B × (24,980 + 982 + 12,800)) voxels
    assert default_voxel_batch_size(24_980, 982, 12_800) == VOXEL_BLOCK_BUDGET_BYTES // (
        4 * (24_980 + 982 + 12_800)
    )
    assert default_voxel_batch_size(10, 2, 3, budget_bytes=1) == 1
