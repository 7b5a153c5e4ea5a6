import os

import pytest

from brainldm.nsd import NSD_ROOT_ENV, NSDLayout, load_expdesign, resolve_nsd_root


def test_paths_follow_the_nsd_tree(tmp_path):
    layout = NSDLayout(tmp_path)
    rel = lambda p: p.relative_to(tmp_path).as_posix()  # noqa: E731
    assert rel(layout.expdesign()) == "nsddata/experiments/nsd/nsd_expdesign.mat"
    assert rel(layout.responses(5)) == "nsddata/ppdata/subj05/behav/responses.tsv"
    assert rel(layout.roi(7, "streams")) == "nsddata/ppdata/subj07/func1pt8mm/roi/streams.nii.gz"
    assert (
        rel(layout.betas(2, 37, "hdf5"))
        == "nsddata_betas/ppdata/subj02/func1pt8mm/betas_fithrf_GLMdenoise_RR/"
        "betas_session37.hdf5"
    )
    assert rel(layout.betas(1, 3, "fsaverage", "rh")).endswith(
        "subj01/fsaverage/betas_fithrf_GLMdenoise_RR/rh.betas_session03.mgh"
    )
    assert rel(layout.captions("val2017")) == (
        "nsddata_stimuli/stimuli/nsd/annotations/captions_val2017.json"
    )
    assert NSDLayout(tmp_path, annotations_dir=tmp_path / "coco").captions("train2017") == (
        tmp_path / "coco" / "captions_train2017.json"
    )


def test_discovers_subjects_and_sessions(fake_nsd):
    layout = fake_nsd.layout
    assert layout.subjects() == [1, 2]
    assert layout.sessions(1, "hdf5") == [1, 2, 3]
    assert layout.sessions(2, "nifti") == [1, 2]
    assert layout.sessions(2, "fsaverage") == [1, 2]


def test_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(NSD_ROOT_ENV, str(tmp_path))
    assert resolve_nsd_root() == tmp_path
    monkeypatch.delenv(NSD_ROOT_ENV)
    with pytest.raises(ValueError, match=f"nsd_root is not set.*{NSD_ROOT_ENV}"):
        resolve_nsd_root()


def test_missing_root_is_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=f"NSD root '{missing}' does not exist"):
        NSDLayout.from_root(missing)


def test_missing_file_names_path_and_download(tmp_path):
    layout = NSDLayout(tmp_path)
    expected = os.fspath(layout.expdesign())
    with pytest.raises(FileNotFoundError, match=f"'{expected}'.*download 'nsddata/'"):
        load_expdesign(layout)
    with pytest.raises(FileNotFoundError, match="nsddata_betas/"):
        layout.require(layout.betas(1, 1, "hdf5"))
    with pytest.raises(FileNotFoundError, match="COCO annotations_trainval2017.zip"):
        layout.require(layout.captions("train2017"))


def test_bad_format_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="fmt='mat' is not valid; allowed: 'hdf5', 'nifti'"):
        NSDLayout(tmp_path).betas(1, 1, "mat")
