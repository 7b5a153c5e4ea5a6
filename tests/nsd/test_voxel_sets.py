"""Voxel sets (brain, nsdgeneral, labels, unions, mask files), streamed and lazy splits."""

import json
import pickle
import tracemalloc

import h5py
import nibabel as nib
import numpy as np
import pytest

import brainldm.nsd._prepare as prepare_module
from brainldm.nsd import (
    StoredBetas,
    SubjectSplit,
    average_repeats,
    load_betas,
    load_fsaverage_roi_mask,
    load_roi_mask,
    load_voxel_set,
    prepare_subject,
    split_subject,
    voxel_set_name,
)


@pytest.fixture(scope="module")
def big_nsd(tmp_path_factory):
    """One subject, 10 sessions on a 24 × 26 × 20 grid (~4,900 brain voxels), HDF5 only."""
    from brainldm.testing import write_fake_nsd

    root = tmp_path_factory.mktemp("big_nsd")
    return write_fake_nsd(
        root, subjects=(1,), n_sessions=10, n_trials_per_session=45, n_design_sessions=13,
        volume_shape=(24, 26, 20), formats=("hdf5",), n_fsaverage_vertices=None,
        keep_betas=False, random_state=5,
    )  # fmt: skip


def _is_test(fake, subject=1):
    return np.isin(fake.trials[subject].nsd_ids, fake.shared_nsd_ids)


def _write_mask(path, mask, affine):
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), path)
    return path


def _user_mask(fake, tmp_path, name="my roi.nii.gz", seed=0):
    """A random half of subject 1's brain voxels, written as a NIfTI mask."""
    ref = nib.load(fake.layout.brainmask(1))
    brain = fake.volumes[1]["brainmask"].astype(bool)
    mask = brain & (np.random.default_rng(seed).random(brain.shape) < 0.5)
    return _write_mask(tmp_path / name, mask, ref.affine), mask


# -- names and masks -------------------------------------------------------------


@pytest.mark.parametrize(
    "voxel_set, name",
    [
        ("brain", "brain"),
        ("nsdgeneral", "nsdgeneral"),
        ("early", "early"),
        (["early", "ventral"], "early+ventral"),
        (("ventral", "early"), "ventral+early"),
        ("/data/my masks/V1 left.nii.gz", "mask-V1_left"),
        ("rel/v1(a).nii", "mask-v1_a_"),
    ],
)
def test_voxel_set_name(voxel_set, name):
    assert voxel_set_name(voxel_set) == name


@pytest.mark.parametrize(
    "voxel_set, match",
    [([], "empty union"), ("", "is empty"), ("a/b", "cannot contain '/'"), (3, "not valid")],
)
def test_voxel_set_name_errors(voxel_set, match):
    with pytest.raises((ValueError, TypeError), match=match):
        voxel_set_name(voxel_set)


def test_brain_set_is_brainmask(fake_nsd):
    mask = load_voxel_set(fake_nsd.layout, 1, "brain")
    img = nib.load(fake_nsd.layout.brainmask(1))
    np.testing.assert_array_equal(mask.mask, np.asarray(img.dataobj) != 0)
    np.testing.assert_array_equal(mask.affine, img.affine)
    assert mask.atlas == "brainmask" and mask.rois == ("brain",)


def test_nsdgeneral_whatever_the_atlas(fake_nsd):
    mask = load_voxel_set(fake_nsd.layout, 1, "nsdgeneral", atlas="streams")
    np.testing.assert_array_equal(mask.mask, fake_nsd.volumes[1]["nsdgeneral"] == 1)


def test_labels_and_unions_match_load_roi_mask(fake_nsd):
    for voxel_set in ("early", ["early", "ventral"]):
        a = load_voxel_set(fake_nsd.layout, 2, voxel_set)
        b = load_roi_mask(fake_nsd.layout, 2, voxel_set)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_user_mask_file(fake_nsd, tmp_path):
    path, mask = _user_mask(fake_nsd, tmp_path)
    loaded = load_voxel_set(fake_nsd.layout, 1, str(path))
    np.testing.assert_array_equal(loaded.mask, mask)
    assert loaded.rois == ("mask-my_roi",) and loaded.atlas == str(path)
    np.testing.assert_array_equal(load_voxel_set(fake_nsd.layout, 1, path).mask, mask)  # Path


def test_voxel_set_errors(fake_nsd, tmp_path):
    layout = fake_nsd.layout
    with pytest.raises(FileNotFoundError, match="nope.nii.gz"):
        load_voxel_set(layout, 1, str(tmp_path / "nope.nii.gz"))
    wrong = _write_mask(tmp_path / "wrong.nii", np.ones((10, 12, 9)), np.eye(4))
    with pytest.raises(ValueError, match=r"wrong.nii' has shape \(10, 12, 9\).*is \(10, 12, 8\)"):
        load_voxel_set(layout, 1, str(wrong))
    with pytest.raises(ValueError, match=r"rois contains unknown value\(s\) 'V1'.*'early'"):
        load_voxel_set(layout, 1, ["early", "V1"])
    with pytest.raises(ValueError, match="empty union"):
        load_voxel_set(layout, 1, [])
    with pytest.raises(FileNotFoundError, match="subj03/func1pt8mm/brainmask.nii.gz"):
        load_voxel_set(layout, 3, "brain")
    with pytest.raises(ValueError, match="space='mni' is not valid; allowed: 'func1pt8mm'"):
        load_voxel_set(layout, 1, "brain", space="mni")


def test_split_errors_before_reading_betas(fake_nsd, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("read betas before checking the voxel sets")

    monkeypatch.setattr(prepare_module, "load_betas", fail)
    wrong = _write_mask(tmp_path / "wrong.nii.gz", np.ones((10, 12, 9)), np.eye(4))
    bad = [
        (["early", str(wrong)], ValueError, "wrong.nii.gz"),
        (["early", str(tmp_path / "missing.nii")], FileNotFoundError, "missing.nii"),
        ([["early", "V1"]], ValueError, "unknown value"),
        ([[]], ValueError, "empty union"),
        ([], ValueError, "rois is empty"),
        (["early", ["early"]], ValueError, r"names the voxel set\(s\) \['early'\] more than once"),
    ]
    for rois, error, match in bad:
        with pytest.raises(error, match=match):
            split_subject(fake_nsd.layout, 1, rois=rois, split="modern")
        with pytest.raises(error, match=match):
            prepare_subject(fake_nsd.layout, 1, tmp_path / "out", rois=rois, split="modern")


# -- splits of voxel sets -----------------------------------------------------------


def test_brain_split_equals_load_betas(fake_nsd):
    layout, is_test = fake_nsd.layout, _is_test(fake_nsd)
    split = split_subject(layout, 1, rois="brain", split="modern")
    assert split.rois == ("brain",) and split.voxel_sets == ("brain",)
    brain = np.asarray(nib.load(layout.brainmask(1)).dataobj) != 0
    betas = load_betas(layout, 1, fake_nsd.sessions[1], brain)
    np.testing.assert_array_equal(split.train_betas["brain"], betas[~is_test])
    np.testing.assert_array_equal(split.train_betas["brain"], fake_nsd.betas[1][~is_test][:, brain])
    mean, ids, counts = average_repeats(betas[is_test], fake_nsd.trials[1].nsd_ids[is_test])
    np.testing.assert_allclose(split.test_betas["brain"], mean, rtol=1e-6)
    np.testing.assert_array_equal(split.test_nsd_ids, ids)
    np.testing.assert_array_equal(split.voxel_indices["brain"], np.argwhere(brain))


def test_sets_sliced_from_one_read(fake_nsd, tmp_path, monkeypatch):
    """Several sets: each session is read once, and each set's columns are its own voxels."""
    path, user = _user_mask(fake_nsd, tmp_path)
    calls = []
    real = prepare_module.load_betas

    def spy(layout, subject, sessions, mask, *args, **kwargs):
        calls.append(list(sessions))
        return real(layout, subject, sessions, mask, *args, **kwargs)

    monkeypatch.setattr(prepare_module, "load_betas", spy)
    rois = ("early", ["early", "ventral"], "nsdgeneral", str(path))
    split = split_subject(fake_nsd.layout, 1, rois=rois, split="modern", zscore=True)
    assert calls == [[1], [2], [3]]
    assert split.rois == ("early", "early+ventral", "nsdgeneral", "mask-my_roi")
    monkeypatch.setattr(prepare_module, "load_betas", real)
    for name, voxel_set in zip(split.rois, rois, strict=True):
        mask = load_voxel_set(fake_nsd.layout, 1, voxel_set)
        alone = split_subject(fake_nsd.layout, 1, rois=[voxel_set], split="modern", zscore=True)
        np.testing.assert_array_equal(split.train_betas[name], alone.train_betas[name])
        np.testing.assert_array_equal(split.test_betas[name], alone.test_betas[name])
        np.testing.assert_array_equal(split.voxel_indices[name], mask.voxel_indices)
    np.testing.assert_array_equal(user[tuple(split.voxel_indices["mask-my_roi"].T)], True)


def test_union_set_round_trip(fake_nsd, tmp_path):
    """Regression: a union as one voxel set used to be saved under "('early', 'ventral')"."""
    split, path = prepare_subject(fake_nsd.layout, 1, tmp_path, rois=[["early", "ventral"]],
                                  split="modern", lazy=False)  # fmt: skip
    assert split.rois == ("early+ventral",)
    assert split.voxel_sets == (("early", "ventral"),)
    with h5py.File(path, "r") as f:
        assert list(f["rois"]) == ["early+ventral"]
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["rois"] == ["early+ventral"] and meta["voxel_sets"] == [["early", "ventral"]]
    assert meta["format_version"] == 2
    mask = load_roi_mask(fake_nsd.layout, 1, ["early", "ventral"])
    betas = fake_nsd.betas[1][:, mask.mask]
    np.testing.assert_array_equal(split.train_betas["early+ventral"], betas[~_is_test(fake_nsd)])
    again, path2 = prepare_subject(fake_nsd.layout, 1, tmp_path, rois=[["early", "ventral"]],
                                   split="modern", lazy=False)  # fmt: skip
    assert path2 == path
    np.testing.assert_array_equal(again.train_betas["early+ventral"], betas[~_is_test(fake_nsd)])
    # the in-memory split saves and reloads too
    memory = split_subject(fake_nsd.layout, 1, rois=[["early", "ventral"]], split="modern")
    loaded = SubjectSplit.load(memory.save(tmp_path / "s.h5"))
    assert loaded.rois == memory.rois and loaded.voxel_sets == memory.voxel_sets
    assert loaded.summary() == memory.summary()


def test_two_sets_as_before(fake_nsd):
    split = split_subject(fake_nsd.layout, 1, rois=("early", "ventral"), split="modern")
    assert split.rois == ("early", "ventral") and split.voxel_sets == ("early", "ventral")
    for roi in ("early", "ventral"):
        mask = load_roi_mask(fake_nsd.layout, 1, roi)
        betas = load_betas(fake_nsd.layout, 1, fake_nsd.sessions[1], mask)
        np.testing.assert_array_equal(split.train_betas[roi], betas[~_is_test(fake_nsd)])


@pytest.mark.parametrize("zscore", [False, True])
def test_prepared_equals_in_memory(fake_nsd, tmp_path, zscore):
    path_mask, _ = _user_mask(fake_nsd, tmp_path)
    rois = ("brain", ["early", "ventral"], "ventral", str(path_mask))
    memory = split_subject(fake_nsd.layout, 1, rois=rois, split="modern", zscore=zscore)
    for lazy in (False, True):
        prepared, path = prepare_subject(fake_nsd.layout, 1, tmp_path / "out", rois=rois,
                                         split="modern", zscore=zscore, lazy=lazy)  # fmt: skip
        for split in (prepared, SubjectSplit.load(path, lazy=lazy)):
            assert split.rois == memory.rois and split.voxel_sets == memory.voxel_sets
            for name in memory.rois:
                for betas in ("train_betas", "test_betas"):
                    got = np.asarray(getattr(split, betas)[name])
                    assert got.dtype == np.float32
                    np.testing.assert_array_equal(got, getattr(memory, betas)[name])
                np.testing.assert_array_equal(split.voxel_indices[name], memory.voxel_indices[name])
            for attr in ("train_nsd_ids", "test_nsd_ids", "test_n_repeats", "affine"):
                np.testing.assert_array_equal(getattr(split, attr), getattr(memory, attr))
            assert split.volume_shape == memory.volume_shape and split.meta == memory.meta


def test_mask_file_content_is_part_of_the_file_name(fake_nsd, tmp_path):
    path, _ = _user_mask(fake_nsd, tmp_path, seed=0)
    _, a = prepare_subject(fake_nsd.layout, 1, tmp_path / "out", rois=[str(path)], split="modern")
    _user_mask(fake_nsd, tmp_path, seed=1)  # same file name, other voxels
    _, b = prepare_subject(fake_nsd.layout, 1, tmp_path / "out", rois=[str(path)], split="modern")
    assert a != b


# -- the file: chunks, lazy reads, version 1 ------------------------------------------


def test_lazy_betas(fake_nsd, tmp_path):
    split, path = prepare_subject(fake_nsd.layout, 2, tmp_path, rois=("brain",), split="modern")
    eager = SubjectSplit.load(path)
    stored = split.train_betas["brain"]
    assert isinstance(stored, StoredBetas) and isinstance(split.test_betas["brain"], StoredBetas)
    full = eager.train_betas["brain"]
    assert stored.shape == full.shape and stored.dtype == full.dtype and stored.ndim == 2
    assert len(stored) == len(full)
    np.testing.assert_array_equal(stored.columns(10, 50), full[:, 10:50])
    np.testing.assert_array_equal(stored[:, 3:9], full[:, 3:9])
    np.testing.assert_array_equal(stored[5:9], full[5:9])
    np.testing.assert_array_equal(stored[()], full)
    np.testing.assert_array_equal(np.asarray(stored, dtype=np.float64), full)
    assert isinstance(split.voxel_indices["brain"], np.ndarray)  # the rest is eager
    copy = pickle.loads(pickle.dumps(stored))
    assert copy == stored
    np.testing.assert_array_equal(copy.columns(0, 7), full[:, :7])
    with pytest.raises(ValueError, match=r"columns\(5, 1000000\) is outside"):
        stored.columns(5, 10**6)
    # a lazy split saves elsewhere, copied block by block
    resaved = SubjectSplit.load(split.save(tmp_path / "copy.h5"))
    np.testing.assert_array_equal(resaved.train_betas["brain"], full)
    np.testing.assert_array_equal(resaved.test_betas["brain"], eager.test_betas["brain"])


def test_datasets_are_chunked_by_voxel_blocks(big_nsd, tmp_path):
    _, path = prepare_subject(big_nsd.layout, 1, tmp_path, rois=("brain", "early"), split="modern")
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 2
        for name in ("brain", "early"):
            for key in ("train_betas", "test_betas"):
                ds = f[f"rois/{name}/{key}"]
                assert ds.dtype == np.float32 and ds.compression is None
                assert ds.chunks is not None and ds.chunks[1] <= 1024
                assert ds.chunks == (min(64, ds.shape[0]), min(1024, ds.shape[1]))
        assert f["rois/brain/train_betas"].chunks == (64, 1024)  # > 1024 voxels: clipped


def test_prepare_streams_to_disk(big_nsd, tmp_path):
    """Peak Python/numpy memory stays below the size of the whole train betas."""
    layout = big_nsd.layout
    prepare_subject(layout, 1, tmp_path / "warm", rois=("brain",), split="modern")  # imports
    tracemalloc.start()
    try:
        split, _ = prepare_subject(layout, 1, tmp_path / "traced", rois=("brain", ["early"]),
                                   split="modern")  # fmt: skip
        streamed_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        split_subject(layout, 1, rois=("brain", ["early"]), split="modern")
        memory_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    n_train, n_voxels = split.train_betas["brain"].shape
    full = n_train * n_voxels * 4
    assert n_voxels > 4000 and len(split.sessions) == 10
    assert memory_peak > full  # the measurement sees the in-memory arrays
    assert streamed_peak < full / 2, (streamed_peak, full)


def test_version_1_file_loads(fake_nsd, tmp_path):
    split = split_subject(fake_nsd.layout, 2, rois=("early", "ventral"), split="modern")
    path = tmp_path / "v1.h5"
    with h5py.File(path, "w") as f:  # as version 1 wrote it: unchunked, no voxel_sets
        f["train_nsd_ids"] = split.train_nsd_ids
        f["test_nsd_ids"] = split.test_nsd_ids
        f["test_n_repeats"] = split.test_n_repeats
        f["affine"] = split.affine
        for roi in split.rois:
            g = f.create_group(f"rois/{roi}")
            g["train_betas"] = split.train_betas[roi]
            g["test_betas"] = split.test_betas[roi]
            g["voxel_indices"] = split.voxel_indices[roi]
    meta = split._sidecar_dict()
    del meta["voxel_sets"]
    meta["format_version"] = 1
    path.with_name(path.name + ".json").write_text(json.dumps(meta))
    for lazy in (False, True):
        loaded = SubjectSplit.load(path, lazy=lazy)
        assert loaded.rois == ("early", "ventral") and loaded.voxel_sets == loaded.rois
        for roi in loaded.rois:
            np.testing.assert_array_equal(loaded.train_betas[roi], split.train_betas[roi])
            np.testing.assert_array_equal(loaded.test_betas[roi], split.test_betas[roi])


def test_newer_format_refused(fake_nsd, tmp_path):
    split = split_subject(fake_nsd.layout, 2, rois="early", split="modern")
    path = split.save(tmp_path / "s.h5")
    sidecar = path.with_name(path.name + ".json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99; this brainldm reads versions 1 to 2"):
        SubjectSplit.load(path)


# -- fsaverage -------------------------------------------------------------------------


def test_fsaverage_split(fake_nsd, tmp_path):
    layout, is_test = fake_nsd.layout, _is_test(fake_nsd)
    rois = ("brain", "early", ["early", "ventral"], "nsdgeneral")
    split = split_subject(layout, 1, rois=rois, split="modern", fmt="fsaverage")
    fs = fake_nsd.fsaverage_betas[1]
    n_vertices = fs.shape[1]
    assert split.volume_shape == (n_vertices,)
    np.testing.assert_array_equal(split.affine, np.eye(4))
    np.testing.assert_array_equal(split.train_betas["brain"], fs[~is_test])  # NaN where NSD has
    np.testing.assert_array_equal(split.voxel_indices["brain"], np.arange(n_vertices)[:, None])
    for name, labels, atlas in [("early", "early", "streams"),
                                ("early+ventral", ["early", "ventral"], "streams"),
                                ("nsdgeneral", "nsdgeneral", "nsdgeneral")]:  # fmt: skip
        mask = load_fsaverage_roi_mask(layout, labels, atlas)
        np.testing.assert_array_equal(split.train_betas[name], fs[~is_test][:, mask])
        np.testing.assert_array_equal(split.voxel_indices[name][:, 0], np.flatnonzero(mask))
    mask = load_voxel_set(layout, 1, "early", space="fsaverage")
    assert mask.voxel_indices.shape == (mask.n_voxels, 1)
    prepared, _ = prepare_subject(layout, 1, tmp_path, rois=rois, split="modern", fmt="fsaverage")
    for name in split.rois:
        np.testing.assert_array_equal(np.asarray(prepared.train_betas[name]),
                                      split.train_betas[name])  # fmt: skip
    assert prepared.volume_shape == split.volume_shape


def test_fsaverage_refuses_mask_files(fake_nsd, tmp_path):
    path, _ = _user_mask(fake_nsd, tmp_path)
    with pytest.raises(ValueError, match="fsaverage betas cannot use"):
        split_subject(fake_nsd.layout, 1, rois=[str(path)], split="modern", fmt="fsaverage")
