import itertools

import numpy as np
import pytest
import sklearn.linear_model as sk
from sklearn.model_selection import KFold

from brainldm.ridge import BandedRidgeCV, RidgeCV, r2_score

GRID = (0.1, 3.0, 100.0)


def _spaces(n=90, seed=0, q=6):
    rng = np.random.default_rng(seed)
    Xa = rng.standard_normal((n, 5))
    Xb = rng.standard_normal((n, 3)) + 0.5 * Xa[:, :3]  # correlated spaces
    Y = (Xa @ rng.standard_normal((5, q)) + 0.7 * Xb @ rng.standard_normal((3, q))
         + rng.standard_normal((n, q)) + 2.0)
    return Xa, Xb, Y


def _banded_reference(Xs, Y, alpha_vec, train, test):
    """Banded ridge = ordinary ridge (alpha 1) on [X_i / sqrt(alpha_i)]."""
    scale = np.concatenate(
        [np.full(x.shape[1], a**-0.5) for x, a in zip(Xs, alpha_vec, strict=True)]
    )
    Z = np.hstack(Xs) * scale
    model = sk.Ridge(alpha=1.0).fit(Z[train], Y[train])
    return model.predict(Z[test]), model.coef_.T * scale[:, None], model.intercept_


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_banded_matches_grid_of_scaled_ridges(solver):
    Xa, Xb, Y = _spaces()
    model = BandedRidgeCV(alphas=GRID, standardize_X=False, solver=solver,
                          dtype="float64").fit([Xa, Xb], Y)
    cands = np.array(list(itertools.product(GRID, repeat=2)))
    np.testing.assert_array_equal(model.alpha_candidates_, cands)
    folds = list(KFold(5).split(Xa))
    ref = np.zeros((len(cands), Y.shape[1]))
    for c, vec in enumerate(cands):
        for train, test in folds:
            pred = _banded_reference([Xa, Xb], Y, vec, train, test)[0]
            ref[c] -= ((Y[test] - pred) ** 2).mean(0) / len(folds)
    np.testing.assert_allclose(model.cv_scores_, ref, rtol=1e-6)
    best = cands[np.argmax(ref, axis=0)].T
    np.testing.assert_array_equal(model.best_alphas_, best)
    assert len({tuple(b) for b in best.T}) > 1  # targets pick different vectors
    every = np.arange(len(Y))
    for t in range(Y.shape[1]):
        _, coef, icpt = _banded_reference([Xa, Xb], Y, best[:, t], every, every)
        np.testing.assert_allclose(model.coef_[:, t], coef[:, t], rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(model.intercept_[t], icpt[t], rtol=1e-6)


def test_split_scores_sum_to_joint_score():
    Xa, Xb, Y = _spaces(n=120)
    train, test = np.arange(90), np.arange(90, 120)
    model = BandedRidgeCV(alphas=GRID).fit([Xa[train], Xb[train]], Y[train])
    joint_train = model.score([Xa[train], Xb[train]], Y[train])
    split_train = model.score([Xa[train], Xb[train]], Y[train], split=True)
    assert split_train.shape == (2, Y.shape[1])
    np.testing.assert_allclose(split_train.sum(0), joint_train, rtol=1e-4)
    # Held-out rows: the split sums to the R² of the prediction with its mean error removed.
    Xt = [Xa[test], Xb[test]]
    pred = model.predict(Xt).astype(np.float64)
    unbiased = pred - (pred - Y[test]).mean(0)
    np.testing.assert_allclose(model.score(Xt, Y[test], split=True).sum(0),
                               r2_score(Y[test], unbiased), rtol=1e-4)


def test_split_predictions_add_up():
    Xa, Xb, Y = _spaces()
    model = BandedRidgeCV(alphas=GRID, dtype="float64").fit([Xa, Xb], Y)
    parts = model.predict([Xa, Xb], split=True)
    assert parts.shape == (2,) + Y.shape
    offset = model.intercept_ + model.X_mean_ @ model.coef_
    np.testing.assert_allclose(parts.sum(0) + offset, model.predict([Xa, Xb]), rtol=1e-10)


def test_list_and_feature_spaces_are_the_same_model():
    Xa, Xb, Y = _spaces()
    as_list = BandedRidgeCV(alphas=GRID, dtype="float64").fit([Xa, Xb], Y)
    as_sizes = BandedRidgeCV([5, 3], alphas=GRID, dtype="float64").fit(np.hstack([Xa, Xb]), Y)
    np.testing.assert_array_equal(as_list.coef_, as_sizes.coef_)
    assert as_sizes.feature_spaces_ == [slice(0, 5), slice(5, 8)]


def test_one_space_equals_ridgecv():
    Xa, _, Y = _spaces()
    banded = BandedRidgeCV(alphas=GRID, dtype="float64").fit(Xa, Y)
    plain = RidgeCV(alphas=GRID, dtype="float64").fit(Xa, Y)
    np.testing.assert_allclose(banded.coef_, plain.coef_, rtol=1e-10)
    np.testing.assert_array_equal(banded.best_alphas_[0], plain.best_alphas_)


def test_noise_space_gets_heavy_regularisation():
    rng = np.random.default_rng(5)
    n = 300
    signal, noise = rng.standard_normal((n, 4)), rng.standard_normal((n, 40))
    Y = signal @ rng.standard_normal((4, 5)) + 0.5 * rng.standard_normal((n, 5))
    model = BandedRidgeCV(alphas=(0.1, 10, 1e3, 1e5)).fit([signal, noise], Y)
    assert np.all(model.best_alphas_[1] > 10 * model.best_alphas_[0])


def test_explicit_candidates_and_shared_alpha():
    Xa, Xb, Y = _spaces()
    cands = np.array([[1.0, 1.0], [1.0, 100.0], [10.0, 0.1]])
    model = BandedRidgeCV(alphas=cands, alpha_per_target=False, dtype="float64").fit([Xa, Xb], Y)
    best = cands[np.argmax(model.cv_scores_.mean(1))]
    np.testing.assert_array_equal(model.best_alphas_, np.repeat(best[:, None], Y.shape[1], 1))
    per_target = BandedRidgeCV(alphas=best[None], dtype="float64").fit([Xa, Xb], Y)
    np.testing.assert_allclose(model.coef_, per_target.coef_, rtol=1e-8)
