import numpy as np
import pytest
from scipy.io import loadmat

from brainldm.nsd import load_expdesign, load_responses, load_stim_info, load_trials


def test_expdesign_ids_are_zero_based(fake_nsd):
    design = load_expdesign(fake_nsd.layout)
    raw = loadmat(fake_nsd.layout.expdesign())
    np.testing.assert_array_equal(design.shared_nsd_ids, raw["sharedix"].ravel() - 1)
    np.testing.assert_array_equal(design.shared_nsd_ids, fake_nsd.shared_nsd_ids)
    np.testing.assert_array_equal(design.masterordering, raw["masterordering"].ravel() - 1)
    # every image of a subject is planned three times; shared images come first
    assert np.all(np.bincount(design.masterordering) == 3)
    np.testing.assert_array_equal(
        design.subjectim[:, : len(design.shared_nsd_ids)],
        np.tile(design.shared_nsd_ids, (design.subjectim.shape[0], 1)),
    )


def test_trial_to_nsd_id_mapping(fake_nsd):
    for subject in (1, 2):
        trials = load_trials(fake_nsd.layout, subject)
        truth = fake_nsd.trials[subject]
        np.testing.assert_array_equal(trials.nsd_ids, truth.nsd_ids)
        np.testing.assert_array_equal(trials.sessions, truth.sessions)
        np.testing.assert_array_equal(trials.trials, truth.trials)
        design = load_expdesign(fake_nsd.layout)
        np.testing.assert_array_equal(
            trials.nsd_ids, design.trial_nsd_ids(subject)[: len(trials)]
        )


def test_trials_subset_of_sessions(fake_nsd):
    trials = load_trials(fake_nsd.layout, 1, sessions=[3, 1])
    assert trials.session_list == [3, 1]
    truth = fake_nsd.trials[1]
    expected = np.concatenate([truth.nsd_ids[truth.sessions == s] for s in (3, 1)])
    np.testing.assert_array_equal(trials.nsd_ids, expected)
    frame = trials.to_frame()
    assert list(frame.columns) == ["subject", "session", "trial", "nsd_id"]


def test_responses_have_nsd_columns(fake_nsd):
    resp = load_responses(fake_nsd.layout, 1)
    assert len(resp.columns) == 19 + 2  # NSD's 19 + nsd_id, trial
    assert resp["73KID"].min() >= 1
    np.testing.assert_array_equal(resp["nsd_id"], resp["73KID"] - 1)
    per_session = resp.groupby("SESSION").size()
    assert per_session.tolist() == [fake_nsd.n_trials_per_session] * 3
    assert resp["RUN"].max() == 12


def test_stim_info_is_indexed_by_nsd_id(fake_nsd):
    info = load_stim_info(fake_nsd.layout)
    assert info.index.name == "nsd_id"
    np.testing.assert_array_equal(info["nsdId"], info.index)
    assert info.loc[fake_nsd.shared_nsd_ids, "shared1000"].all()
    assert info["shared1000"].sum() == len(fake_nsd.shared_nsd_ids)
    # subjectK_repR: 1-based global trial numbers, 0 = never shown
    trials = fake_nsd.trials[1]
    first = info.loc[trials.nsd_ids[0], "subject1_rep0"]
    assert first == 1


def test_unknown_subject_lists_valid(fake_nsd):
    with pytest.raises(ValueError, match=r"subject=4 is not available.*valid subjects: \[1, 2\]"):
        load_trials(fake_nsd.layout, 4)


def test_unknown_session_lists_valid(fake_nsd):
    with pytest.raises(ValueError, match=r"unavailable session\(s\) \[7\].*\[1, 2, 3\]"):
        load_trials(fake_nsd.layout, 1, sessions=[1, 7])
