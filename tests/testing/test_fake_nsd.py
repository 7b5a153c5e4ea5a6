import json

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.io import loadmat

from brainldm.nsd import load_roi_mask, split_subject
from brainldm.testing import write_fake_nsd


def test_real_formats(fake_nsd):
    layout = fake_nsd.layout
    mat = loadmat(layout.expdesign())
    for name in ("masterordering", "subjectim", "sharedix", "basiccnt", "stimpattern"):
        assert mat[name].dtype == np.float64
    assert mat["masterordering"].shape[0] == 1 and mat["sharedix"].shape[0] == 1
    assert mat["subjectim"].shape[0] == 8
    assert mat["sharedix"].min() >= 1  # 1-based
    info = pd.read_csv(layout.stim_info(), index_col=0)
    assert len(info.columns) == 8 + 8 + 24
    assert list(info.columns[:8]) == [
        "cocoId", "cocoSplit", "cropBox", "loss", "nsdId", "flagged", "BOLD5000", "shared1000"
    ]  # fmt: skip
    assert info.columns[-1] == "subject8_rep2"
    resp = pd.read_csv(layout.responses(1), sep="\t")
    assert len(resp.columns) == 19
    with h5py.File(layout.stimuli()) as f:
        assert f["imgBrick"].shape == (4000, 64, 64, 3)
        assert f["imgBrick"].chunks == (1, 64, 64, 3)
    with h5py.File(layout.betas(1, 1, "hdf5")) as f:
        assert f["betas"].dtype == np.int16 and f["betas"].chunks == (30, 1, 1, 1)
    mgh = nib.load(layout.betas(1, 1, "fsaverage", "lh"))
    assert mgh.shape == (37, 1, 1, 30) and mgh.get_data_dtype() == np.dtype(">f4")
    captions = json.loads(layout.captions("train2017").read_text())
    assert set(captions) == {"info", "licenses", "images", "annotations"}
    assert set(captions["annotations"][0]) == {"image_id", "id", "caption"}


def test_every_size_differs(fake_nsd):
    sizes = [*fake_nsd.volumes[1]["streams"].shape, fake_nsd.n_trials_per_session, 64, 37]
    assert len(set(sizes)) == len(sizes)


def test_planted_signal_is_recoverable(fake_nsd):
    """Early voxels follow appearance features, ventral ones caption features, not the other."""
    split = split_subject(fake_nsd.layout, 1, rois=("early", "ventral"), split="modern")
    rows = fake_nsd.feature_rows(split.train_nsd_ids)

    def r2(F, Y):
        F1 = np.c_[F, np.ones(len(F))]
        coef, *_ = np.linalg.lstsq(F1, Y, rcond=None)
        return 1 - ((Y - F1 @ coef) ** 2).sum() / ((Y - Y.mean(0)) ** 2).sum(), coef[:-1]

    F = fake_nsd.features["early"][rows]
    r2_early, coef = r2(F, split.train_betas["early"])
    assert r2_early > 0.3
    # the fitted response matches the planted one (features are collinear, so compare
    # responses rather than weights)
    truth = F @ fake_nsd.weights[1]["early"]
    assert np.corrcoef((F @ coef).ravel(), truth.ravel())[0, 1] > 0.9
    r2_ventral, _ = r2(fake_nsd.features["ventral"][rows], split.train_betas["ventral"])
    assert r2_ventral > 0.3
    # exactly planted: betas = features @ weights + noise (noise_std 0.5), others noise only
    all_rows = fake_nsd.feature_rows(fake_nsd.trials[1].nsd_ids)
    for roi in ("early", "ventral"):
        mask = load_roi_mask(fake_nsd.layout, 1, roi).mask
        planted = fake_nsd.features[roi][all_rows] @ fake_nsd.weights[1][roi]
        resid = fake_nsd.betas[1][:, mask] - planted
        good = fake_nsd.betas[1][:, mask] != 0  # skip the all-zero bad voxel
        assert abs(resid[good].std() - 0.5) < 0.05 and abs(resid[good].mean()) < 0.05
        assert planted.std() > 0.5
    other = fake_nsd.betas[1][:, load_roi_mask(fake_nsd.layout, 1, "parietal").mask]
    assert abs(other.std() - 0.5) < 0.05


def test_pluggable_features(tmp_path):
    def brightness(images, captions):
        return images.mean(axis=(1, 2, 3))[:, None]

    fake = write_fake_nsd(
        tmp_path, early_features=brightness, formats=("hdf5",), n_fsaverage_vertices=None,
        noise_std=0.01,
    )  # fmt: skip
    assert fake.features["early"].shape[1] == 1
    mask = load_roi_mask(fake.layout, 1, "early")
    betas = fake.betas[1][:, mask.mask]
    feature = fake.features["early"][fake.feature_rows(fake.trials[1].nsd_ids), 0]
    assert abs(np.corrcoef(betas[:, 1], feature)[0, 1]) > 0.95


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="must be a multiple of 3"):
        write_fake_nsd(tmp_path, n_sessions=2, n_trials_per_session=7, n_design_sessions=2)
    with pytest.raises(ValueError, match="n_stimuli=50 is too small"):
        write_fake_nsd(tmp_path, n_stimuli=50)
    with pytest.raises(ValueError, match=r"formats contains unknown value\(s\) 'mat'"):
        write_fake_nsd(tmp_path, formats=("mat",))
    with pytest.raises(ValueError, match="n_trials_per_session must be a positive integer"):
        write_fake_nsd(tmp_path, n_trials_per_session=0)
