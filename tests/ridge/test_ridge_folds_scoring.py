import numpy as np
import pytest
import sklearn.metrics

from brainldm.ridge import correlation_score, grouped_folds, r2_score, r2_score_split


def _nsd_like_ids(seed=0):
    """Trials of 40 images shown 1-3 times, in shuffled order."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(rng.choice(73000, 40, replace=False), rng.integers(1, 4, 40))
    return rng.permutation(ids)


@pytest.mark.parametrize("random_state", [None, 0, 1])
def test_grouped_folds_never_split_an_image(random_state):
    ids = _nsd_like_ids()
    folds = grouped_folds(ids, n_splits=5, random_state=random_state)
    assert len(folds) == 5
    tests = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(ids)))  # each row once
    for train, test in folds:
        assert not set(ids[train]) & set(ids[test])
        np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(len(ids)))
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 3  # as even as groups of <= 3 allow


def test_grouped_folds_randomness():
    ids = _nsd_like_ids()
    same = grouped_folds(ids, 4, random_state=7), grouped_folds(ids, 4, random_state=7)
    for (_, a), (_, b) in zip(*same, strict=True):
        np.testing.assert_array_equal(a, b)
    plain, shuffled = grouped_folds(ids, 4), grouped_folds(ids, 4, random_state=7)
    assert any(not np.array_equal(a, b) for (_, a), (_, b) in zip(plain, shuffled, strict=True))


def test_seed_kfold_leaks_repeats_and_grouped_folds_do_not():
    from sklearn.model_selection import KFold

    ids = _nsd_like_ids()
    leaks = sum(len(set(ids[tr]) & set(ids[te])) for tr, te in KFold(5).split(ids))
    assert leaks > 0
    assert sum(len(set(ids[tr]) & set(ids[te])) for tr, te in grouped_folds(ids)) == 0


def test_r2_and_correlation_match_references():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((30, 4))
    P = Y + rng.standard_normal((30, 4)) * np.array([0.1, 1, 3, 10])
    np.testing.assert_allclose(
        r2_score(Y, P), sklearn.metrics.r2_score(Y, P, multioutput="raw_values"), rtol=1e-12
    )
    ref = [np.corrcoef(Y[:, t], P[:, t])[0, 1] for t in range(4)]
    np.testing.assert_allclose(correlation_score(Y, P), ref, rtol=1e-12)
    assert isinstance(r2_score(Y[:, 0], P[:, 0]), float)
    const = np.ones((30, 1))
    assert r2_score(const, P[:, :1]) == 0 and correlation_score(const, P[:, :1]) == 0


def test_r2_split_matches_himalaya_on_centred_data():
    from himalaya.scoring import r2_score_split as himalaya_split

    rng = np.random.default_rng(1)
    parts = rng.standard_normal((3, 50, 4))
    parts -= parts.mean(1, keepdims=True)
    Y = parts.sum(0) + rng.standard_normal((50, 4))
    Y -= Y.mean(0)
    ours = r2_score_split(Y, parts)
    np.testing.assert_allclose(ours, himalaya_split(Y, parts), rtol=1e-10)
    np.testing.assert_allclose(ours.sum(0), r2_score(Y, parts.sum(0)), rtol=1e-10)
