import nibabel as nib
import numpy as np
import pytest

from brainldm.nsd import STREAMS_LABELS, atlas_labels, load_fsaverage_roi_mask, load_roi_mask


def test_streams_labels_by_name(fake_nsd):
    streams = fake_nsd.volumes[1]["streams"]
    for name, value in STREAMS_LABELS.items():
        mask = load_roi_mask(fake_nsd.layout, 1, name)
        np.testing.assert_array_equal(mask.mask, streams == value)
        assert mask.n_voxels > 0
    assert atlas_labels(fake_nsd.layout, "streams") == STREAMS_LABELS


def test_union_of_labels(fake_nsd):
    mask = load_roi_mask(fake_nsd.layout, 2, ["early", "ventral"])
    streams = fake_nsd.volumes[2]["streams"]
    np.testing.assert_array_equal(mask.mask, np.isin(streams, [1, 5]))
    assert mask.rois == ("early", "ventral")
    np.testing.assert_array_equal(mask.voxel_indices, np.argwhere(mask.mask))


def test_minus_one_and_zero_are_never_selected(fake_nsd):
    streams = fake_nsd.volumes[1]["streams"]
    assert (streams == -1).any() and (streams == 0).any()
    everything = load_roi_mask(fake_nsd.layout, 1, list(STREAMS_LABELS))
    np.testing.assert_array_equal(everything.mask, streams > 0)


def test_nsdgeneral(fake_nsd):
    mask = load_roi_mask(fake_nsd.layout, 1, "nsdgeneral", atlas="nsdgeneral")
    np.testing.assert_array_equal(mask.mask, fake_nsd.volumes[1]["nsdgeneral"] == 1)
    img = nib.load(fake_nsd.layout.roi(1, "nsdgeneral"))
    np.testing.assert_array_equal(mask.affine, img.affine)


def test_fsaverage_roi(fake_nsd):
    mask = load_fsaverage_roi_mask(fake_nsd.layout, "early")
    values = np.concatenate(
        [np.asarray(nib.load(fake_nsd.layout.fsaverage_roi("streams", h)).dataobj).ravel()
         for h in ("lh", "rh")]
    )  # fmt: skip
    np.testing.assert_array_equal(mask, values == 1)


def test_unknown_roi_lists_valid(fake_nsd):
    with pytest.raises(ValueError, match=r"rois contains unknown value\(s\) 'V1'.*'early'"):
        load_roi_mask(fake_nsd.layout, 1, ["early", "V1"])


def test_unknown_subject_roi_file(fake_nsd):
    with pytest.raises(FileNotFoundError, match="subj03/func1pt8mm/roi/streams.nii.gz"):
        load_roi_mask(fake_nsd.layout, 3, "early")
