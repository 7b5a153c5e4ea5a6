import warnings

import h5py
import nibabel as nib
import numpy as np
import pytest

from brainldm.nsd import BETA_SCALE, VolumeMask, load_betas, load_roi_mask, zscore_rows_inplace


@pytest.mark.parametrize("fmt", ["hdf5", "nifti"])
@pytest.mark.parametrize("roi", ["early", "ventral", ("early", "midlateral", "parietal")])
def test_volume_betas_equal_planted(fake_nsd, fmt, roi):
    mask = load_roi_mask(fake_nsd.layout, 1, roi)
    betas = load_betas(fake_nsd.layout, 1, [1, 2, 3], mask, fmt)
    assert betas.dtype == np.float32
    expected = fake_nsd.betas[1][:, mask.mask]
    np.testing.assert_array_equal(betas, expected)


def test_betas_are_divided_by_300(fake_nsd):
    mask = load_roi_mask(fake_nsd.layout, 1, "early")
    with h5py.File(fake_nsd.layout.betas(1, 1, "hdf5")) as f:
        raw = f["betas"]
        assert raw.dtype == np.int16
        X, Y, Z = mask.mask.shape
        assert raw.shape == (fake_nsd.n_trials_per_session, Z, Y, X)
        x, y, z = mask.voxel_indices[3]
        column = raw[:, z, y, x]
    betas = load_betas(fake_nsd.layout, 1, [1], mask, "hdf5")
    np.testing.assert_array_equal(betas[:, 3], column.astype(np.float32) / BETA_SCALE)
    img = nib.load(fake_nsd.layout.betas(1, 1, "nifti"))
    assert img.get_data_dtype() == np.int16
    assert img.shape == (X, Y, Z, fake_nsd.n_trials_per_session)


def test_session_order_and_float64(fake_nsd):
    mask = load_roi_mask(fake_nsd.layout, 2, "ventral")
    betas = load_betas(fake_nsd.layout, 2, [2, 1], mask, "nifti", dtype="float64")
    truth = fake_nsd.betas[2][:, mask.mask]
    sessions = fake_nsd.trials[2].sessions
    expected = np.concatenate([truth[sessions == 2], truth[sessions == 1]])
    assert betas.dtype == np.float64
    np.testing.assert_allclose(betas, expected, rtol=1e-6)


def test_fsaverage_betas_not_rescaled(fake_nsd):
    betas = load_betas(fake_nsd.layout, 1, [1, 2, 3], None, "fsaverage")
    np.testing.assert_array_equal(betas, fake_nsd.fsaverage_betas[1])
    assert np.isnan(betas).any()  # NaN vertices planted in one session
    mask = np.zeros(betas.shape[1], bool)
    mask[[0, 5, 40, 60]] = True
    sub = load_betas(fake_nsd.layout, 1, [2], mask, "fsaverage")
    truth = fake_nsd.fsaverage_betas[1][fake_nsd.trials[1].sessions == 2][:, mask]
    np.testing.assert_array_equal(sub, truth)


def test_zscore_per_session_tolerates_bad_voxels(fake_nsd):
    mask = load_roi_mask(fake_nsd.layout, 1, "early")
    bad_session, bad_ijk = fake_nsd.bad_voxels[1]
    col = int(np.flatnonzero((mask.voxel_indices == bad_ijk[0]).all(axis=1))[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = load_betas(fake_nsd.layout, 1, [1, 2, 3], mask, "hdf5", zscore=True)
    sessions = fake_nsd.trials[1].sessions
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(z[sessions == bad_session, col], 0)
    raw = fake_nsd.betas[1][:, mask.mask]
    for s in (1, 2, 3):
        block = raw[sessions == s]
        expected = (block - block.mean(0)) / np.where(block.std(0) > 0, block.std(0), 1)
        expected[:, block.std(0) == 0] = 0
        np.testing.assert_allclose(z[sessions == s], expected, atol=1e-5)
    fs = load_betas(fake_nsd.layout, 1, [1, 2, 3], None, "fsaverage", zscore=True)
    assert np.isfinite(fs).all()


def test_zscore_reference():
    X = np.array([[1.0, 2.0, np.nan, 5.0], [3.0, 2.0, np.nan, np.nan], [5.0, 2.0, np.nan, 7.0]])
    out = zscore_rows_inplace(X.copy())
    np.testing.assert_allclose(out[:, 0], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1], 0)  # zero variance
    np.testing.assert_array_equal(out[:, 2], 0)  # all NaN
    np.testing.assert_allclose(out[:, 3], [-1.0, 0.0, 1.0])  # NaN -> mean


def test_shape_mismatch(fake_nsd):
    mask = load_roi_mask(fake_nsd.layout, 1, "early")
    wrong = VolumeMask(
        mask=np.ones(mask.mask.shape[::-1], bool), affine=mask.affine, subject=1,
        atlas="streams", rois=("early",),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"grid of .* is \(8, 12, 10\), but the ROI/mask"):
        load_betas(fake_nsd.layout, 1, [1], wrong, "hdf5")
    with pytest.raises(ValueError, match=r"grid of .* is \(10, 12, 8\), but the ROI/mask"):
        load_betas(fake_nsd.layout, 1, [1], wrong, "nifti")


def test_unknown_session(fake_nsd):
    mask = load_roi_mask(fake_nsd.layout, 2, "early")
    with pytest.raises(ValueError, match=r"sessions \[3\] of subject 2.*available sessions: \[1, 2\]"):
        load_betas(fake_nsd.layout, 2, [1, 3], mask, "hdf5")


def test_mask_required(fake_nsd):
    with pytest.raises(ValueError, match="mask is required for fmt='hdf5'"):
        load_betas(fake_nsd.layout, 1, [1], None, "hdf5")


@pytest.mark.parametrize("fmt", ["nifti", "fsaverage"])
def test_block_reads_equal_whole_reads(fake_nsd, monkeypatch, fmt):
    """Reading one volume (or surface map) at a time gives the same array."""
    import brainldm.nsd._betas as betas_module

    mask = None if fmt == "fsaverage" else load_roi_mask(fake_nsd.layout, 1, "early")
    whole = load_betas(fake_nsd.layout, 1, [1, 2], mask, fmt)
    monkeypatch.setattr(betas_module, "_BLOCK_BYTES", 1)
    blocks = load_betas(fake_nsd.layout, 1, [1, 2], mask, fmt)
    np.testing.assert_array_equal(blocks, whole)
