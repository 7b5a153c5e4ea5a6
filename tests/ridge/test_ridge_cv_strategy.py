"""choose_cv_strategy: the public hook that says how RidgeCV solves its folds."""

import numpy as np
import pytest

from brainldm.ridge import BandedRidgeCV, RidgeCV, choose_cv_strategy, grouped_folds

GRID = tuple(10.0 ** np.arange(7))


def _data(n, p, q, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p)), rng.standard_normal((n, q))


@pytest.mark.parametrize(
    "n, p, q, folds",
    [(480, 96, 240, "grouped"), (480, 96, 40, "grouped"), (200, 20, 5000, 5),
     (120, 60, 3, 4), (40, 90, 30, 5)],
)  # fmt: skip
def test_matches_what_ridgecv_chooses(n, p, q, folds):
    X, Y = _data(n, p, q)
    cv = grouped_folds(np.repeat(np.arange(n // 2), 2), 5) if folds == "grouped" else folds
    fitted = RidgeCV(alphas=GRID, cv=cv).fit(X, Y).cv_strategy_
    assert choose_cv_strategy(n, p, cv, len(GRID), q) == fitted


def test_both_strategies_occur_and_depend_on_n_targets():
    cv = grouped_folds(np.repeat(np.arange(240), 2), 5)
    few, many = (choose_cv_strategy(480, 96, cv, 7, q) for q in (40, 240))
    assert {few, many} == {"woodbury", "eigh_per_fold"}
    assert choose_cv_strategy(40, 90, 5, 7, 10**6) == "woodbury"  # dual solver
    assert choose_cv_strategy(1000, 50, 5, 7, 20000) == "eigh_per_fold"
    assert choose_cv_strategy(1000, 50, 5, 7, 20000, solver="dual") == "woodbury"


def test_a_target_block_with_the_whole_strategy_gives_the_whole_fit():
    ids = np.repeat(np.arange(240), 2)
    X, Y = _data(480, 96, 240, seed=1)
    cv = grouped_folds(ids, 5)
    whole = RidgeCV(alphas=GRID, cv=cv).fit(X, Y)
    strategy = choose_cv_strategy(480, 96, cv, len(GRID), 240)
    assert strategy == whole.cv_strategy_
    block = RidgeCV(alphas=GRID, cv=cv, cv_strategy=strategy).fit(X, Y[:, :40])
    alone = RidgeCV(alphas=GRID, cv=cv).fit(X, Y[:, :40]).cv_strategy_
    assert block.cv_strategy_ == strategy != alone
    np.testing.assert_array_equal(block.best_alphas_, whole.best_alphas_[:40])
    np.testing.assert_allclose(block.cv_scores_, whole.cv_scores_[:, :40], rtol=1e-6)
    np.testing.assert_allclose(block.coef_, whole.coef_[:, :40], rtol=1e-5, atol=1e-7)


def test_banded_uses_the_hook_per_decomposition():
    X, Y = _data(300, 30, 50)
    model = BandedRidgeCV(alphas=(1.0, 100.0), feature_spaces=[10, 20]).fit(X, Y)
    # the last decomposition scores the candidates of one ratio: a single alpha
    assert model.cv_strategy_ == choose_cv_strategy(300, 30, 5, 1, 50)


def test_errors():
    with pytest.raises(ValueError, match="solver='qr' is not valid"):
        choose_cv_strategy(10, 2, 5, 3, 4, solver="qr")
    with pytest.raises(ValueError, match="n_alphas must be a positive integer, got 0"):
        choose_cv_strategy(10, 2, 5, 0, 4)
    with pytest.raises(ValueError, match="cv=20 folds need at least 20 samples"):
        choose_cv_strategy(10, 2, 20, 3, 4)
