import numpy as np
import pytest

from brainldm.nsd import (
    SubjectSplit,
    average_repeats,
    load_roi_mask,
    prepare_subject,
    split_shared,
    split_subject,
)


def _loop_average(X, ids):
    """Reference: first-presentation order, mean of each image's rows, by a plain loop."""
    order, means, counts = [], [], []
    for i in ids:
        if i not in order:
            order.append(i)
    for i in order:
        rows = [k for k in range(len(ids)) if ids[k] == i]
        means.append(X[rows].mean(axis=0))
        counts.append(len(rows))
    return np.array(means), np.array(order), np.array(counts)


def test_average_repeats_matches_loop():
    rng = np.random.default_rng(0)
    ids = np.array([7, 3, 7, 9, 3, 7, 1])
    X = rng.standard_normal((7, 4))
    mean, unique, counts = average_repeats(X, ids)
    ref_mean, ref_ids, ref_counts = _loop_average(X, list(ids))
    np.testing.assert_allclose(mean, ref_mean)
    np.testing.assert_array_equal(unique, ref_ids)
    np.testing.assert_array_equal(counts, ref_counts)
    mean_s, unique_s, counts_s = average_repeats(X, ids, order="sorted")
    np.testing.assert_array_equal(unique_s, [1, 3, 7, 9])
    np.testing.assert_allclose(mean_s[2], X[[0, 2, 5]].mean(0))
    np.testing.assert_array_equal(counts_s, [1, 2, 3, 1])


def test_average_repeats_errors():
    with pytest.raises(ValueError, match="order='random' is not valid"):
        average_repeats(np.zeros((2, 1)), np.array([0, 1]), order="random")
    with pytest.raises(ValueError, match="X has 3 rows but nsd_ids has 2"):
        average_repeats(np.zeros((3, 1)), np.array([0, 1]))


def test_split_equals_planted(fake_nsd):
    split = split_subject(fake_nsd.layout, 1, rois=("early", "ventral"), split="modern")
    truth = fake_nsd.trials[1]
    is_test = np.isin(truth.nsd_ids, fake_nsd.shared_nsd_ids)
    assert split.sessions == (1, 2, 3)
    np.testing.assert_array_equal(split.train_nsd_ids, truth.nsd_ids[~is_test])
    ref_mean_ids = _loop_average(np.zeros((is_test.sum(), 1)), list(truth.nsd_ids[is_test]))[1]
    np.testing.assert_array_equal(split.test_nsd_ids, ref_mean_ids)
    assert set(split.test_n_repeats) == {1, 2, 3}  # 1, 2 and 3 repeats all occur
    for roi in ("early", "ventral"):
        mask = load_roi_mask(fake_nsd.layout, 1, roi)
        betas = fake_nsd.betas[1][:, mask.mask]
        np.testing.assert_array_equal(split.train_betas[roi], betas[~is_test])
        ref_mean, ref_ids, ref_counts = _loop_average(betas[is_test], list(truth.nsd_ids[is_test]))
        np.testing.assert_allclose(split.test_betas[roi], ref_mean, rtol=1e-6)
        np.testing.assert_array_equal(split.test_n_repeats, ref_counts)
        np.testing.assert_array_equal(split.voxel_indices[roi], mask.voxel_indices)


def test_sorted_order(fake_nsd):
    a = split_subject(fake_nsd.layout, 2, rois=("early",), split="modern")
    b = split_subject(fake_nsd.layout, 2, rois=("early",), split="modern", order="sorted")
    assert np.all(np.diff(b.test_nsd_ids) > 0)
    perm = np.argsort(a.test_nsd_ids)
    np.testing.assert_array_equal(b.test_betas["early"], a.test_betas["early"][perm])


def test_nifti_split_equals_hdf5_split(fake_nsd):
    a = split_subject(fake_nsd.layout, 1, rois=("ventral",), split="modern", fmt="hdf5")
    b = split_subject(fake_nsd.layout, 1, rois=("ventral",), split="modern", fmt="nifti")
    np.testing.assert_array_equal(a.train_betas["ventral"], b.train_betas["ventral"])
    np.testing.assert_array_equal(a.test_betas["ventral"], b.test_betas["ventral"])


@pytest.mark.parametrize("preset, max_session", [("takagi2023", 37), ("modern", 40)])
def test_split_presets_sizes(fake_nsd_40, preset, max_session):
    split = split_subject(fake_nsd_40.layout, 1, rois=("early",), split=preset)
    truth = fake_nsd_40.trials[1]
    used = truth.sessions <= max_session
    ids = truth.nsd_ids[used]
    is_test = np.isin(ids, fake_nsd_40.shared_nsd_ids)
    assert split.sessions == tuple(range(1, max_session + 1))
    assert len(split.train_nsd_ids) == (~is_test).sum()
    assert len(split.test_nsd_ids) == len(np.unique(ids[is_test]))
    assert split.test_n_repeats.sum() == is_test.sum()


def test_presets_differ(fake_nsd_40):
    paper = split_subject(fake_nsd_40.layout, 1, rois=("early",), split="takagi2023")
    modern = split_subject(fake_nsd_40.layout, 1, rois=("early",), split="modern")
    # all shared images are shown by session 40; dropping 38-40 loses some
    assert len(modern.test_nsd_ids) == len(fake_nsd_40.shared_nsd_ids)
    assert len(paper.test_nsd_ids) < len(modern.test_nsd_ids)


def test_unknown_preset(fake_nsd):
    with pytest.raises(ValueError, match="split='paper' is not valid; allowed: 'takagi2023'"):
        split_subject(fake_nsd.layout, 1, split="paper")


def test_split_shared():
    np.testing.assert_array_equal(split_shared(np.array([4, 2, 9]), np.array([9, 4])),
                                  [True, False, True])  # fmt: skip


def test_prepare_writes_once_and_reuses(fake_nsd, tmp_path, monkeypatch):
    split, path = prepare_subject(fake_nsd.layout, 1, tmp_path, split="modern")
    assert path.exists() and path.with_name(path.name + ".json").exists()
    assert not list(tmp_path.glob(".tmp-*"))

    import brainldm.nsd._prepare as prepare_module

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of re-using")

    monkeypatch.setattr(prepare_module, "_split_into", fail)
    again, path2 = prepare_subject(fake_nsd.layout, 1, tmp_path, split="modern")
    assert path2 == path
    for roi in split.rois:
        np.testing.assert_array_equal(again.train_betas[roi], split.train_betas[roi])
        np.testing.assert_array_equal(again.test_betas[roi], split.test_betas[roi])
    np.testing.assert_array_equal(again.test_nsd_ids, split.test_nsd_ids)
    assert again.meta["package_version"]
    # other settings -> another file
    with pytest.raises(AssertionError, match="recomputed"):
        prepare_subject(fake_nsd.layout, 1, tmp_path, split="modern", zscore=True)


def test_save_load_roundtrip(fake_nsd, tmp_path):
    split = split_subject(fake_nsd.layout, 2, rois=("early", "ventral"), split="modern")
    loaded = SubjectSplit.load(split.save(tmp_path / "s.h5"))
    assert loaded.summary() == split.summary()
    assert loaded.volume_shape == (10, 12, 8)
    np.testing.assert_array_equal(loaded.affine, split.affine)


def test_failed_save_keeps_previous_file(fake_nsd, tmp_path, monkeypatch):
    split = split_subject(fake_nsd.layout, 2, rois=("early",), split="modern")
    path = split.save(tmp_path / "s.h5")
    before = path.read_bytes()
    broken = SubjectSplit(**{**split.__dict__, "train_betas": {"early": object()}})
    with pytest.raises(TypeError):
        broken.save(path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".tmp-*"))
