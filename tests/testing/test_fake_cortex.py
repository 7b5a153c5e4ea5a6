"""The fake subject on real cortex (``write_fake_nsd(cortex="fsaverage5")``)."""

import sys

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("nilearn")

from brainldm.maps import draw_map, unmask, volume_to_fsaverage  # noqa: E402
from brainldm.nsd import STREAMS_LABELS, load_roi_mask  # noqa: E402
from brainldm.testing import write_fake_nsd  # noqa: E402
from brainldm.testing._fake_cortex import (  # noqa: E402
    fsaverage5_geometry,
    load_fsaverage5_surfaces,
)

SHAPE = (18, 22, 16)


@pytest.fixture(scope="module")
def cortex_nsd(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake_cortex")
    return write_fake_nsd(
        root, cortex="fsaverage5", volume_shape=SHAPE, n_sessions=2, n_trials_per_session=30,
        n_fsaverage_vertices=37, formats=("hdf5", "nifti", "fsaverage"), random_state=1,
    )  # fmt: skip


@pytest.fixture(scope="module")
def midpoints():
    """Mid-thickness coordinates (mm) of fsaverage5's lh then rh vertices."""
    return np.concatenate([(w + p) / 2 for w, p, _ in load_fsaverage5_surfaces().values()])


def _painted(fake, mask, order=0):
    """fsaverage5 vertices (lh then rh) painted by the voxels of a boolean volume."""
    lh, rh = volume_to_fsaverage(fake.layout, 1, np.where(mask, 1.0, np.nan), order=order)
    return np.isfinite(np.concatenate([lh, rh]))


def test_rois_land_on_their_anatomy(cortex_nsd, midpoints):
    streams = cortex_nsd.volumes[1]["streams"]
    where = {}
    for roi in ("early", "ventral", "lateral", "parietal"):
        hit = _painted(cortex_nsd, streams == STREAMS_LABELS[roi])
        assert hit.sum() > 300, roi  # regions, not dots
        x, y, z = midpoints[hit].T
        where[roi] = dict(y=y.mean(), z=z.mean(), ax=np.abs(x).mean(), posterior=(y < -70).mean())
    early, ventral, lateral = where["early"], where["ventral"], where["lateral"]
    assert early["y"] < -75 and early["posterior"] > 0.8  # occipital pole
    for other in ("ventral", "lateral", "parietal"):
        assert early["y"] < where[other]["y"] - 20, other
    assert ventral["z"] < -5 and ventral["z"] < lateral["z"] - 10  # inferior temporal
    assert lateral["ax"] > 40 and lateral["ax"] > early["ax"] + 20  # lateral surface
    assert where["parietal"]["z"] > 30


def test_whole_brain_map_paints_fsaverage(cortex_nsd):
    brain = cortex_nsd.volumes[1]["brainmask"].astype(bool)
    assert _painted(cortex_nsd, brain, order=1).mean() > 0.99  # ~20,000 vertices
    cortex = cortex_nsd.volumes[1]["streams"] >= 0
    assert (brain >= cortex).all() and brain.sum() > cortex.sum()
    counts = {roi: int((cortex_nsd.volumes[1]["streams"] == v).sum())
              for roi, v in STREAMS_LABELS.items()}  # fmt: skip
    assert min(counts.values()) > 0, counts


def test_early_map_renders_posterior(cortex_nsd, midpoints, tmp_path):
    """A map planted as 1 on early voxels, 0 elsewhere, through the public map functions."""
    mask = cortex_nsd.volumes[1]["brainmask"].astype(bool)
    ijk = np.argwhere(mask)
    values = (cortex_nsd.volumes[1]["streams"][tuple(ijk.T)] == STREAMS_LABELS["early"]) * 1.0
    lh, rh = volume_to_fsaverage(cortex_nsd.layout, 1, unmask(values, ijk, SHAPE), order=0)
    v = np.concatenate([lh, rh])
    assert np.isfinite(v).sum() > 20000
    ones = v == 1
    assert 500 < ones.sum() < 0.2 * len(v)
    assert (midpoints[ones, 1] < -70).mean() > 0.9  # most lie posterior
    assert (midpoints[v == 0, 1] < -70).mean() < 0.2
    paths = draw_map(values, ijk, SHAPE, tmp_path, "early", layout=cortex_nsd.layout, subject=1,
                     surfaces=("flat",))  # fmt: skip
    assert [p.name for p in paths] == ["early_flat.png"] and paths[0].stat().st_size > 0


def test_files_agree_with_the_surfaces(cortex_nsd):
    layout = cortex_nsd.layout
    img = nib.load(layout.roi(1, "streams"))
    mm = img.header.get_zooms()[0]
    assert np.allclose(img.header.get_zooms(), mm)
    assert np.allclose(np.abs(np.diag(img.affine)[:3]), mm)
    assert nib.load(layout.betas(1, 1, "nifti")).header.get_zooms()[:3] == img.header.get_zooms()
    surfaces = load_fsaverage5_surfaces()
    for hemi in ("lh", "rh"):
        white, pial, _ = surfaces[hemi]
        identity = np.asarray(nib.load(layout.transform(1, f"{hemi}.white-to-fsaverage")).dataobj)
        assert np.array_equal(identity.ravel(), np.arange(1, 10243))
        for name, depth in (("layerB1", 0.75), ("layerB2", 0.5), ("layerB3", 0.25)):
            path = layout.transform(1, f"{hemi}.func1pt8-to-{name}")
            ijk = np.asarray(nib.load(path).dataobj).reshape(-1, 3) - 1  # 1-based on disk
            xyz = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
            assert np.allclose(xyz, white + depth * (pial - white), atol=1e-3)
    # the fsaverage betas' vertices sample their own voxel at mid-depth
    fs = nib.load(layout.fsaverage_roi("streams", "lh")).get_fdata().ravel()
    assert fs.shape == (37,) and (fs >= 0).all()


def test_lateral_follows_the_caption_features(cortex_nsd):
    rows = cortex_nsd.feature_rows(cortex_nsd.trials[1].nsd_ids)
    for roi, source in (("early", "early"), ("ventral", "ventral"), ("lateral", "ventral")):
        mask = load_roi_mask(cortex_nsd.layout, 1, roi).mask
        planted = cortex_nsd.features[source][rows] @ cortex_nsd.weights[1][roi]
        betas = cortex_nsd.betas[1][:, mask]
        good = betas != 0  # skip the all-zero bad voxels
        resid = (betas - planted)[good]
        assert abs(resid.std() - 0.5) < 0.05 and planted.std() > 0.5, roi
    other = cortex_nsd.betas[1][:, load_roi_mask(cortex_nsd.layout, 1, "parietal").mask]
    assert abs(other.std() - 0.5) < 0.05


def test_shell_is_still_the_default(tmp_path):
    shell = write_fake_nsd(tmp_path / "a", formats=("hdf5",), n_fsaverage_vertices=None)
    assert "lateral" not in shell.weights[1]
    assert not shell.layout.transform(1, "lh.white-to-fsaverage").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(cortex="sphere"), "cortex='sphere'"),
        (dict(cortex="fsaverage5", brain_voxels=100), "brain_voxels"),
        (dict(cortex="fsaverage5", n_native_vertices=600), "n_native_vertices=600"),
        (dict(cortex="fsaverage5", volume_shape=(3, 4, 5)), "too small"),
    ],
)
def test_bad_options(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        write_fake_nsd(tmp_path, formats=("hdf5",), n_fsaverage_vertices=None, **options)


def test_missing_nilearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nilearn", None)
    with pytest.raises(ImportError, match=r"brainldm\[maps\]"):
        fsaverage5_geometry(SHAPE)
