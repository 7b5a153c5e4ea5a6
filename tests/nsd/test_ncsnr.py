"""Data quality: NSD's noise-ceiling SNR, computed, read, written by the fake, kept in splits."""

import nibabel as nib
import numpy as np
import pytest

from brainldm.nsd import (
    STREAMS_LABELS,
    NSDLayout,
    SubjectSplit,
    check_split_inputs,
    load_ncsnr,
    noise_ceiling_snr,
    prepare_subject,
    split_subject,
)


def _planted(signal_sd, noise_sd, n_images=3000, n_repeats=3, seed=0):
    """Trials of ``n_images`` images × ``n_repeats``: one voxel per (signal sd, noise sd)."""
    rng = np.random.default_rng(seed)
    ids = np.tile(np.arange(n_images), n_repeats)  # each repeat in its own block
    signal = rng.standard_normal((n_images, len(signal_sd))) * signal_sd
    betas = signal[ids] + rng.standard_normal((len(ids), len(noise_sd))) * noise_sd
    return betas, ids


def test_ncsnr_recovers_the_planted_signal_to_noise_ratio():
    signal_sd = np.array([3.0, 1.0, 0.5, 2.0, 0.0])
    noise_sd = np.array([1.0, 1.0, 1.0, 4.0, 1.0])
    betas, ids = _planted(signal_sd, noise_sd)
    ncsnr = noise_ceiling_snr(betas * 7.0 + 100.0, ids)  # units and offsets do not matter
    np.testing.assert_allclose(ncsnr[:4], (signal_sd / noise_sd)[:4], rtol=0.06)
    assert ncsnr[4] < 0.1 and ncsnr.dtype == np.float32 and (ncsnr >= 0).all()


def test_ncsnr_z_scores_within_sessions():
    """A session's offset and gain (NSD's session-to-session instability) are removed."""
    betas, ids = _planted(np.array([1.0]), np.array([1.0]), n_images=1500)
    sessions = np.repeat([1, 2, 3], len(ids) // 3)  # one repeat per session
    shifted = betas * np.array([1.0, 3.0, 0.5])[sessions - 1, None] + (10.0 * sessions)[:, None]
    within = noise_ceiling_snr(shifted, ids, sessions)
    np.testing.assert_allclose(within, noise_ceiling_snr(betas, ids), rtol=0.02)
    assert noise_ceiling_snr(shifted, ids)[0] < 0.5 * within[0]  # pooled: offsets look like noise


def test_ncsnr_uses_the_images_with_enough_repeats_only():
    betas, ids = _planted(np.array([1.0]), np.array([1.0]))  # ncsnr 1
    # images shown twice, their two trials opposite: the same spread as the others,
    # but all noise; NSD's estimate (3 repeats) leaves them out
    x = np.random.default_rng(1).standard_normal((2000, 1)) * np.sqrt(2)
    more = np.concatenate([betas, x, -x])
    more_ids = np.concatenate([ids, np.tile(np.arange(10_000, 12_000), 2)])
    np.testing.assert_allclose(noise_ceiling_snr(more, more_ids), 1.0, rtol=0.06)
    assert noise_ceiling_snr(more, more_ids, min_repeats=2)[0] < 0.7


def test_ncsnr_errors_and_voxels_without_variance():
    with pytest.raises(ValueError, match="no image has 3 or more trials"):
        noise_ceiling_snr(np.zeros((4, 2)), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="min_repeats=1 is not valid"):
        noise_ceiling_snr(np.zeros((4, 2)), [0, 0, 1, 1], min_repeats=1)
    with pytest.raises(ValueError, match=r"betas must have shape \(n_trials, n_voxels\)"):
        noise_ceiling_snr(np.zeros((4, 2)), [0, 0, 1])
    betas = np.random.default_rng(0).standard_normal((6, 2))
    betas[:, 1] = 5.0  # constant (outside the brain)
    assert noise_ceiling_snr(betas, [0, 0, 0, 1, 1, 1])[1] == 0


def test_layout_paths():
    layout = NSDLayout("/nsd")
    folder = "/nsd/nsddata_betas/ppdata/subj02/func1pt8mm/betas_fithrf_GLMdenoise_RR"
    assert str(layout.ncsnr(2)) == f"{folder}/ncsnr.nii.gz"
    assert layout.ncsnr(2, "nifti") == layout.ncsnr(2, "hdf5")
    assert str(layout.ncsnr(2, "fsaverage", "rh")) == (
        "/nsd/nsddata_betas/ppdata/subj02/fsaverage/betas_fithrf_GLMdenoise_RR/rh.ncsnr.mgh"
    )
    with pytest.raises(ValueError, match="hemi='both' is not valid"):
        layout.ncsnr(2, "fsaverage", "both")


def test_the_fake_writes_the_ncsnr_of_its_betas(fake_nsd):
    layout, subject = fake_nsd.layout, 1
    ncsnr = load_ncsnr(layout, subject)
    streams = fake_nsd.volumes[subject]["streams"]
    brain = fake_nsd.volumes[subject]["brainmask"].astype(bool)
    assert ncsnr.shape == streams.shape and ncsnr.dtype == np.float32
    tr = fake_nsd.trials[subject]
    betas = fake_nsd.betas[subject][:, brain]  # what was written, read back by the fake
    np.testing.assert_allclose(ncsnr[brain], noise_ceiling_snr(betas, tr.nsd_ids, tr.sessions),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    planted = np.isin(streams, [STREAMS_LABELS["early"], STREAMS_LABELS["ventral"]])
    noise = brain & ~planted
    assert np.median(ncsnr[planted]) > 1.0 > 0.3 > np.median(ncsnr[noise])
    assert (ncsnr[~brain] == 0).all()
    # the NIfTI sits on the subject's grid, with its affine
    img = nib.load(layout.ncsnr(subject))
    np.testing.assert_allclose(img.affine, nib.load(layout.brainmask(subject)).affine)
    fs = load_ncsnr(layout, subject, "fsaverage")
    assert fs.shape == (fake_nsd.fsaverage_betas[subject].shape[1],) and np.isfinite(fs).all()


def test_a_split_keeps_each_rois_ncsnr(fake_nsd, tmp_path):
    layout = fake_nsd.layout
    volume = load_ncsnr(layout, 1)
    split, path = prepare_subject(layout, 1, tmp_path, rois=("early", "ventral"), split="modern")
    for roi in ("early", "ventral"):
        expected = volume[tuple(split.voxel_indices[roi].T)]  # columns in voxel_indices order
        np.testing.assert_array_equal(split.ncsnr[roi], expected)
        assert split.median_ncsnr(roi) == pytest.approx(float(np.median(expected)))
    import json

    sidecar = json.loads(path.with_name(path.name + ".json").read_text())
    assert sidecar["median_ncsnr"]["early"] == pytest.approx(split.median_ncsnr("early"))
    in_memory = split_subject(layout, 1, rois=("early",), split="modern")
    np.testing.assert_array_equal(in_memory.ncsnr["early"], split.ncsnr["early"])
    fs = split_subject(layout, 1, rois=("early",), split="modern", fmt="fsaverage")
    assert len(fs.ncsnr["early"]) == fs.train_betas["early"].shape[1]


def test_without_the_ncsnr_file_the_quality_is_absent_not_an_error(fake_nsd_copy, tmp_path):
    layout = fake_nsd_copy
    layout.ncsnr(1).unlink()
    with pytest.raises(FileNotFoundError, match="ncsnr.nii.gz") as info:
        load_ncsnr(layout, 1)
    assert "nsddata_betas/" in str(info.value)  # names the download
    split, path = prepare_subject(layout, 1, tmp_path, rois=("early",), split="modern")
    assert split.ncsnr == {} and split.median_ncsnr("early") is None
    assert SubjectSplit.load(path).ncsnr == {}


def test_an_ncsnr_file_on_another_grid_is_refused_before_any_beta_is_read(fake_nsd_copy):
    layout = fake_nsd_copy
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.float32), np.eye(4)), layout.ncsnr(1))
    with pytest.raises(ValueError, match=r"ncsnr.nii.gz' has shape \(3, 3, 3\)"):
        check_split_inputs(layout, 1, rois=("early",), split="modern")
