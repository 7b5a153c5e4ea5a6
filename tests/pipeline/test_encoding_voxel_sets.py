"""The encoding voxel set of a run: whole brain by default, unions and masks from the config."""

import nibabel as nib
import numpy as np
import pytest

from brainldm.config import make_run_config
from brainldm.nsd import NSDLayout
from brainldm.pipeline import RunContext, RunLayout, run_pipeline


def _prepare(fake_nsd, tmp_path, **data):
    config = make_run_config("takagi2023", {"data": {"subjects": (1,), "split": "modern",
                                                     "nsd_root": str(fake_nsd.root), **data}})
    run_pipeline(config, tmp_path / "run", stages=["prepare"])
    return RunContext(config, RunLayout(tmp_path / "run"), NSDLayout(fake_nsd.root))


def test_the_paper_preset_encodes_the_whole_brain(fake_nsd, tmp_path):
    assert make_run_config("takagi2023").data.encoding_roi == "brain"
    ctx = _prepare(fake_nsd, tmp_path)
    split = ctx.split(1, "encoding", lazy=True)
    assert ctx.voxel_set() == "brain"
    brain = np.asarray(nib.load(NSDLayout(fake_nsd.root).brainmask(1)).dataobj) > 0
    np.testing.assert_array_equal(split.voxel_indices["brain"], np.argwhere(brain))
    assert split.train_betas["brain"].shape == (len(split.train_nsd_ids), brain.sum())


def test_a_union_from_the_config_reloads(fake_nsd, tmp_path):
    # The defect: the union passed the config check, was saved under "('early', 'ventral')"
    # and its reload raised KeyError.
    ctx = _prepare(fake_nsd, tmp_path, encoding_roi=["early", "ventral"])
    split = ctx.split(1, "encoding")
    assert ctx.voxel_set() == "early+ventral" and split.rois == ("early+ventral",)
    decoding = ctx.split(1, "decoding")
    both = np.concatenate([decoding.voxel_indices["early"], decoding.voxel_indices["ventral"]])
    order = np.lexsort(both.T[::-1])  # C order over (x, y, z)
    np.testing.assert_array_equal(split.voxel_indices["early+ventral"], both[order])
    joined = np.concatenate([decoding.train_betas["early"], decoding.train_betas["ventral"]], 1)
    np.testing.assert_array_equal(split.train_betas["early+ventral"], joined[:, order])


def test_a_users_mask_file_and_bad_sets_are_checked_before_work(fake_nsd, tmp_path):
    layout = NSDLayout(fake_nsd.root)
    ref = nib.load(layout.brainmask(1))
    mask = np.zeros(ref.shape, dtype=np.uint8)
    mask[2:5, 3:6, 2:4] = 1
    path = tmp_path / "my roi.nii.gz"
    nib.save(nib.Nifti1Image(mask, ref.affine), path)
    ctx = _prepare(fake_nsd, tmp_path, encoding_roi=str(path))
    split = ctx.split(1, "encoding")
    assert ctx.voxel_set() == "mask-my_roi"
    assert split.train_betas["mask-my_roi"].shape[1] == mask.sum()
    with pytest.raises(ValueError, match="nowhere"):
        _prepare(fake_nsd, tmp_path / "b", encoding_roi=["early", "nowhere"])
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        _prepare(fake_nsd, tmp_path / "c", encoding_roi=str(tmp_path / "missing.nii.gz"))
    assert not (tmp_path / "b" / "run" / "prepare").exists() or not list(
        (tmp_path / "b" / "run" / "prepare").rglob("*.h5"))
