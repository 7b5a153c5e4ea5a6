import numpy as np
import pytest
import sklearn.linear_model as sk
from sklearn.model_selection import GroupKFold, KFold, ShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainldm.ridge import (
    TAKAGI2023_RIDGE,
    Ridge,
    RidgeCV,
    correlation_score,
    grouped_folds,
    r2_score,
    takagi2023_ridge,
)

ALPHAS = np.logspace(-2, 4, 7)


def _problem(n=90, p=12, q=7, noise=1.0, offset=3.0, seed=0):
    """Planted linear problem; target scales differ so alpha choices differ."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(0.5, 2.0, p) + rng.uniform(-1, 1, p)
    W = rng.standard_normal((p, q)) * np.linspace(0.05, 1.0, q)
    Y = X @ W + noise * rng.standard_normal((n, q)) + offset
    return X, Y, W


def _cv_reference(X, Y, alphas, folds, fit_intercept, scoring="neg_mean_squared_error"):
    """Mean over folds of the validation score of per-fold sklearn refits."""
    scores = np.zeros((len(folds), len(alphas), Y.shape[1]))
    for f, (train, test) in enumerate(folds):
        for a, alpha in enumerate(alphas):
            model = sk.Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X[train], Y[train])
            pred = model.predict(X[test])
            if scoring == "neg_mean_squared_error":
                scores[f, a] = -((Y[test] - pred) ** 2).mean(0)
            elif scoring == "r2":
                scores[f, a] = r2_score(Y[test], pred)
            else:
                scores[f, a] = correlation_score(Y[test], pred)
    return scores.mean(0)


@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("per_target", [False, True])
def test_ridge_matches_sklearn(solver, fit_intercept, per_target):
    X, Y, _ = _problem()
    alpha = np.linspace(0.5, 30, Y.shape[1]) if per_target else 7.0
    ours = Ridge(alpha, fit_intercept=fit_intercept, standardize_X=False, solver=solver,
                 dtype="float64").fit(X, Y)
    ref = sk.Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_.T, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-5)


def test_ridge_standardized_matches_scaler_pipeline():
    X, Y, _ = _problem(n=40, p=60)  # n < p: dual
    ours = Ridge(3.0, dtype="float64").fit(X, Y)
    ref = make_pipeline(StandardScaler(), sk.Ridge(alpha=3.0)).fit(X, Y)
    assert ours.solver_ == "dual"
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-5)
    np.testing.assert_allclose(ours.X_scale_, ref[0].scale_)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("shape", [(90, 12), (40, 70)], ids=["primal", "dual"])
def test_ridgecv_matches_himalaya(fit_intercept, shape):
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV

    X, Y, _ = _problem(*shape, q=25, noise=2.0)
    folds = grouped_folds(np.arange(shape[0]) // 3, n_splits=5)
    ours = RidgeCV(ALPHAS, cv=folds, fit_intercept=fit_intercept, standardize_X=False,
                   dtype="float64").fit(X, Y)
    with pytest.warns(UserWarning) if shape[0] < shape[1] else _nothing():
        ref = HimalayaRidgeCV(alphas=ALPHAS, cv=folds, fit_intercept=fit_intercept).fit(X, Y)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-9)
    assert len(np.unique(ours.best_alphas_)) > 1  # the comparison is not trivial
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-4, atol=1e-10)
    # himalaya reports the best mean score plus its 1e-10 * log(alpha) tie-breaker.
    np.testing.assert_allclose(ours.cv_scores_.max(0), ref.cv_scores_, rtol=1e-7, atol=1e-8)


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def test_paper_preset_matches_seed_pipeline():
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV

    X, Y, _ = _problem(n=100, p=15, q=20, noise=2.0)
    alphas = TAKAGI2023_RIDGE["alphas"]
    ours = takagi2023_ridge(dtype="float64").fit(X, Y)
    seed = make_pipeline(StandardScaler(), HimalayaRidgeCV(alphas=np.array(alphas))).fit(X, Y)
    np.testing.assert_allclose(ours.best_alphas_, seed[1].best_alphas_, rtol=1e-9)
    np.testing.assert_allclose(ours.predict(X), seed.predict(X), rtol=1e-4)
    # No intercept on uncentred Y: predictions on the training set have zero mean.
    np.testing.assert_allclose(ours.predict(X).mean(0), 0, atol=1e-9)
    assert not ours.fit_intercept and ours.cv == 5


@pytest.mark.parametrize("scoring", ["neg_mean_squared_error", "r2", "correlation"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize(
    "shape, strategy",
    [((60, 8), "woodbury"), ((60, 8), "eigh_per_fold"), ((60, 20), "eigh_per_fold"),
     ((30, 45), "woodbury")],
    # per fold, n_test > n_features uses the Gram expansion of the squared error
    ids=["primal-woodbury", "primal-per-fold-gram", "primal-per-fold", "dual-woodbury"],
)
def test_cv_scores_equal_per_fold_refits(scoring, fit_intercept, shape, strategy):
    X, Y, _ = _problem(*shape, q=5)
    n = shape[0]
    folds = [  # uneven, non-contiguous, and one fold leaves rows unused
        (np.arange(10, n), np.arange(0, 10)),
        (np.r_[0:10, 25:n], np.arange(10, 25)),
        (np.arange(0, n - 20), np.arange(n - 12, n)),
    ]
    ours = RidgeCV(ALPHAS, cv=folds, scoring=scoring, fit_intercept=fit_intercept,
                   standardize_X=False, cv_strategy=strategy, dtype="float64").fit(X, Y)
    assert ours.cv_strategy_ == strategy
    ref = _cv_reference(X, Y, ALPHAS, folds, fit_intercept, scoring)
    np.testing.assert_allclose(ours.cv_scores_, ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(ours.best_alphas_, ALPHAS[np.argmax(ref, axis=0)])


def test_splitter_objects_and_groups():
    X, Y, _ = _problem(n=60)
    ids = np.repeat(np.arange(20), 3)
    base = dict(alphas=ALPHAS, standardize_X=False, dtype="float64")
    a = RidgeCV(cv=grouped_folds(ids, 4), **base).fit(X, Y)
    b = RidgeCV(cv=4, **base).fit(X, Y, groups=ids)
    np.testing.assert_array_equal(a.cv_scores_, b.cv_scores_)
    c = RidgeCV(cv=GroupKFold(4), **base).fit(X, Y, groups=ids)
    ref = _cv_reference(X, Y, ALPHAS, list(GroupKFold(4).split(X, Y, ids)), True)
    np.testing.assert_allclose(c.cv_scores_, ref, rtol=1e-6)
    d = RidgeCV(cv=ShuffleSplit(3, test_size=0.3, random_state=0), **base).fit(X, Y)
    ref = _cv_reference(X, Y, ALPHAS, list(ShuffleSplit(3, test_size=0.3, random_state=0)
                                           .split(X)), True)
    np.testing.assert_allclose(d.cv_scores_, ref, rtol=1e-6)
    assert d.n_splits_ == 3


def test_recovers_planted_weights():
    rng = np.random.default_rng(3)
    n, p = 500, 10
    X = rng.standard_normal((n, p))
    W = rng.standard_normal((p, 4))
    W[:, 3] = 0  # a pure-noise target
    Y = X @ W + 0.1 * rng.standard_normal((n, 4)) - 5.0
    model = RidgeCV(np.logspace(-3, 5, 9), standardize_X=False).fit(X, Y)
    np.testing.assert_allclose(model.coef_[:, :3], W[:, :3], atol=0.02)
    np.testing.assert_allclose(model.intercept_[:3], -5.0, atol=0.02)
    assert np.all(model.best_alphas_[:3] <= 10)
    assert model.best_alphas_[3] >= 1e3  # noise: heavy shrinkage
    assert np.all(model.score(X, Y)[:3] > 0.99)


def test_cv_strategies_agree_and_auto_picks_by_cost():
    X, Y, _ = _problem(n=200, p=10, q=300)  # few features, many targets: per fold
    kw = dict(alphas=ALPHAS, dtype="float64")
    auto = RidgeCV(**kw).fit(X, Y)
    woodbury = RidgeCV(cv_strategy="woodbury", **kw).fit(X, Y)
    assert auto.cv_strategy_ == "eigh_per_fold"
    np.testing.assert_allclose(auto.cv_scores_, woodbury.cv_scores_, rtol=1e-8)
    np.testing.assert_allclose(auto.coef_, woodbury.coef_, rtol=1e-8, atol=1e-12)
    X, Y, _ = _problem(n=100, p=80, q=3)  # many features, few targets: one decomposition
    assert RidgeCV(**kw).fit(X, Y).cv_strategy_ == "woodbury"
    X, Y, _ = _problem(n=30, p=80, q=3)
    assert RidgeCV(**kw).fit(X, Y).cv_strategy_ == "woodbury"  # dual


def test_primal_and_dual_agree():
    X, Y, _ = _problem(n=50, p=40, q=6)
    kw = dict(alphas=ALPHAS, dtype="float64")
    primal = RidgeCV(solver="primal", **kw).fit(X, Y)
    dual = RidgeCV(solver="dual", **kw).fit(X, Y)
    np.testing.assert_allclose(primal.cv_scores_, dual.cv_scores_, rtol=1e-6)
    np.testing.assert_allclose(primal.coef_, dual.coef_, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(primal.intercept_, dual.intercept_, rtol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize(
    "shape, strategy",
    [((70, 10), "woodbury"), ((70, 10), "eigh_per_fold"), ((30, 50), "woodbury")],
    ids=["primal-woodbury", "primal-per-fold", "dual"],
)
def test_torch_backend_matches_numpy(shape, strategy):
    pytest.importorskip("torch")
    X, Y, _ = _problem(*shape, q=9)
    for dtype, tol in [("float64", 1e-9), ("float32", 2e-4)]:
        # At the smallest alpha the dual nearly interpolates: two alphas' float32 CV
        # scores then differ by 5e-5 relative, less than torch and numpy float32 kernels
        # disagree on some CPUs, so the float32 pass leaves it out (float64 keeps it).
        alphas = ALPHAS if dtype == "float64" else ALPHAS[1:]
        kw = dict(alphas=alphas, dtype=dtype, n_targets_batch=4, cv_strategy=strategy)
        ref = RidgeCV(**kw).fit(X, Y)
        ours = RidgeCV(backend="torch", device="cpu", **kw).fit(X, Y)
        assert isinstance(ours.coef_, np.ndarray) and ours.coef_.dtype == dtype
        np.testing.assert_array_equal(ours.best_alphas_, ref.best_alphas_)
        scale = np.abs(ref.coef_).max()
        np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=tol, atol=tol * scale)
    fixed = Ridge(2.0, backend="torch", dtype="float64").fit(X, Y)
    np.testing.assert_allclose(fixed.coef_, Ridge(2.0, dtype="float64").fit(X, Y).coef_,
                               rtol=1e-9)


def test_target_batches_do_not_change_the_fit():
    X, Y, _ = _problem(q=11)
    one = RidgeCV(ALPHAS, dtype="float64", n_targets_batch=1000).fit(X, Y)
    many = RidgeCV(ALPHAS, dtype="float64", n_targets_batch=3).fit(X, Y)
    np.testing.assert_allclose(many.coef_, one.coef_, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(many.best_alphas_, one.best_alphas_)
    fixed = Ridge(ALPHAS[:1].repeat(11) * np.arange(1, 12), dtype="float64", n_targets_batch=2)
    np.testing.assert_allclose(
        fixed.fit(X, Y).coef_,
        Ridge(fixed.alpha, dtype="float64").fit(X, Y).coef_, rtol=1e-12, atol=1e-14,
    )


def test_float32_default_is_close_to_float64():
    X, Y, _ = _problem(q=10)
    f32 = RidgeCV(ALPHAS).fit(X, Y)
    f64 = RidgeCV(ALPHAS, dtype="float64").fit(X, Y)
    assert f32.coef_.dtype == np.float32 and f32.predict(X).dtype == np.float32
    np.testing.assert_array_equal(f32.best_alphas_, f64.best_alphas_)
    np.testing.assert_allclose(f32.predict(X), f64.predict(X), rtol=1e-4, atol=1e-4)


def test_shared_alpha_maximises_mean_score():
    X, Y, _ = _problem(q=8)
    folds = list(KFold(5).split(X))
    model = RidgeCV(ALPHAS, alpha_per_target=False, standardize_X=False, dtype="float64").fit(X, Y)
    ref = _cv_reference(X, Y, ALPHAS, folds, True)
    best = ALPHAS[np.argmax(ref.mean(1))]
    np.testing.assert_array_equal(model.best_alphas_, np.full(8, best))
    fixed = sk.Ridge(alpha=best).fit(X, Y)
    np.testing.assert_allclose(model.coef_, fixed.coef_.T, rtol=1e-6)


def test_standardize_y_changes_only_the_shared_choice():
    X, Y, _ = _problem(q=6)
    Y = Y * np.array([1, 1, 1, 1, 1, 100.0])  # one target dominates the raw MSE
    kw = dict(alphas=ALPHAS, dtype="float64")
    raw = RidgeCV(**kw).fit(X, Y)
    scaled = RidgeCV(standardize_Y=True, **kw).fit(X, Y)
    np.testing.assert_array_equal(raw.best_alphas_, scaled.best_alphas_)
    np.testing.assert_allclose(raw.predict(X), scaled.predict(X), rtol=1e-8)
    raw_shared = RidgeCV(alpha_per_target=False, **kw).fit(X, Y)
    scaled_shared = RidgeCV(alpha_per_target=False, standardize_Y=True, **kw).fit(X, Y)
    # Raw MSE is dominated by the large target; z-scored targets weigh the same.
    assert raw_shared.best_alphas_[0] == ALPHAS[np.argmax(raw.cv_scores_.mean(1))] == 1.0
    assert scaled_shared.best_alphas_[0] == ALPHAS[np.argmax(scaled.cv_scores_.mean(1))] == 10.0
    Ys = (Y - Y.mean(0)) / Y.std(0)
    np.testing.assert_allclose(scaled.cv_scores_, RidgeCV(**kw).fit(X, Ys).cv_scores_, rtol=1e-8)


def test_one_dimensional_target_and_pipeline():
    X, Y, _ = _problem(q=1)
    y = Y[:, 0]
    model = make_pipeline(StandardScaler(), RidgeCV(ALPHAS, standardize_X=False)).fit(X, y)
    est = model[-1]
    assert est.coef_.shape == (X.shape[1],) and np.ndim(est.intercept_) == 0
    assert np.ndim(est.best_alphas_) == 0 and est.cv_scores_.shape == (len(ALPHAS), 1)
    assert model.predict(X).shape == (len(y),)
    assert isinstance(est.score(model[0].transform(X), y), float)


def test_progress_bar(capsys):
    X, Y, _ = _problem(q=6)
    RidgeCV(ALPHAS, n_targets_batch=2, progress=True).fit(X, Y)
    assert "RidgeCV" in capsys.readouterr().err
    RidgeCV(ALPHAS, n_targets_batch=2).fit(X, Y)
    assert capsys.readouterr().err == ""


def test_indexed_rows_targets_equal_the_expanded_array():
    from brainldm.ridge import IndexedRows, RidgeCV

    rng = np.random.default_rng(3)
    distinct = rng.standard_normal((30, 7)).astype(np.float32)
    index = rng.integers(0, 30, size=80)
    X = rng.standard_normal((80, 12))
    Y = IndexedRows(distinct, index)
    np.testing.assert_array_equal(np.asarray(Y), distinct[index])
    np.testing.assert_array_equal(Y[5:9, 2:4], distinct[index][5:9, 2:4])
    a = RidgeCV(alphas=(0.1, 1.0, 10.0), n_targets_batch=3).fit(X, Y)
    b = RidgeCV(alphas=(0.1, 1.0, 10.0), n_targets_batch=3).fit(X, distinct[index])
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)
    bad = distinct.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="Y"):
        RidgeCV(alphas=(1.0,)).fit(X, IndexedRows(bad, index))
    with pytest.raises(ValueError, match="index must lie"):
        IndexedRows(distinct, np.array([0, 30]))
