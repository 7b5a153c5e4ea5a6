"""Encoding fits by voxel batches: the pieces of a fit, and the same result as one block."""

import numpy as np
import pytest

from brainldm.distributed import Execution
from brainldm.encoding import (
    EncodingBlock,
    FitOptions,
    assemble_encoding_result,
    correlation_pvalues,
    fdr_significant,
    fit_encoding_model,
    fit_voxel_block,
    model_cv_strategy,
    reduce_space,
    run_encoding_analyses,
    voxel_batches,
)


def _planted(seed=0, n_img=120, n_test=40, n_vox=(40, 40, 80), scale=0.15):
    """Voxels planted on A, on B, and null; two repeats of each training image."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_img + n_test, 12))
    B = rng.standard_normal((n_img + n_test, 16))
    ids_tr, ids_te = np.repeat(np.arange(n_img), 2), np.arange(n_img, n_img + n_test)
    Wa = rng.standard_normal((12, n_vox[0])) * scale
    Wb = rng.standard_normal((16, n_vox[1])) * scale

    def responses(ids, noise):
        Y = rng.standard_normal((len(ids), sum(n_vox))) * noise
        Y[:, : n_vox[0]] += A[ids] @ Wa
        Y[:, n_vox[0] : n_vox[0] + n_vox[1]] += B[ids] @ Wb
        return Y

    return dict(train={"A": A[ids_tr], "B": B[ids_tr]}, test={"A": A[ids_te], "B": B[ids_te]},
                Ytr=responses(ids_tr, 1.0), Yte=responses(ids_te, 0.6), groups=ids_tr)  # fmt: skip


def _analyses(d, n_components, voxel_batch_size=None):
    return run_encoding_analyses(
        d["train"], d["Ytr"], d["test"], d["Yte"], singles=["A"], pairs=[("A", "B")],
        groups=d["groups"],
        options=FitOptions(alphas=(1.0, 10.0, 100.0, 1e3), n_components=n_components),
        execution=Execution(voxel_batch_size=voxel_batch_size),
    )  # fmt: skip


def assert_same_result(a, b):
    """Equal up to float32 rounding of the ridge (which depends on the block's width)."""
    assert (a.name, a.spaces, a.n_components, a.q, a.n_test) == (
        b.name, b.spaces, b.n_components, b.q, b.n_test
    )  # fmt: skip
    np.testing.assert_allclose(a.r, b.r, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.p, b.p, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(a.r2, b.r2, rtol=1e-5, atol=1e-5)
    if a.r2_split is None:
        assert b.r2_split is None
    else:
        np.testing.assert_allclose(a.r2_split, b.r2_split, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a.best_alphas, b.best_alphas)
    np.testing.assert_array_equal(a.significant, b.significant)


@pytest.mark.parametrize("n_components", [None, 8])
def test_voxel_batches_give_the_one_block_result(n_components):
    d = _planted()
    one = _analyses(d, n_components)
    batched = _analyses(d, n_components, voxel_batch_size=70)  # 70, 70, 20 voxels
    assert list(batched.results) == list(one.results) == ["A", "A+B", "B"]
    for name in one.results:
        assert_same_result(batched.results[name], one.results[name])
    for key in one.unique:
        np.testing.assert_allclose(batched.unique[key], one.unique[key], rtol=1e-5, atol=1e-5)
    joint = batched.results["A+B"]
    assert joint.r2_split.shape == (2, 160) and joint.best_alphas.shape == (2, 160)
    assert batched.results["A"].best_alphas.shape == (160,)
    assert joint.n_components == ({"A": 8, "B": 8} if n_components else {"A": 12, "B": 16})
    assert one.results["A"].significant[:40].mean() > 0.6  # the planted problem is not trivial
    assert 0 < one.results["A"].significant.sum() < 160


def test_fit_encoding_model_by_batches_and_its_pieces():
    d = _planted(1)
    X_tr, X_te = {"B": d["train"]["B"]}, {"B": d["test"]["B"]}
    kw = dict(groups=d["groups"], n_components=10, alphas=(1.0, 10.0, 100.0, 1e3))
    one = fit_encoding_model(X_tr, d["Ytr"], X_te, d["Yte"], **kw)
    batched = fit_encoding_model(X_tr, d["Ytr"], X_te, d["Yte"], **kw,
                                 execution=Execution(voxel_batch_size=33))  # fmt: skip
    assert_same_result(batched, one)
    # by hand: reduce once, fit blocks, assemble
    space = reduce_space("B", X_tr["B"], X_te["B"], d["groups"], n_components=10)
    assert space.train.shape == (120, 10) and space.train_trials().shape == (240, 10)
    strategy = model_cv_strategy([space], 160, d["groups"], alphas=kw["alphas"])
    blocks = [
        fit_voxel_block([space], d["Ytr"][:, a:b], d["Yte"][:, a:b], d["groups"],
                        alphas=kw["alphas"], cv_strategy=strategy)  # fmt: skip
        for a, b in voxel_batches(160, 50)
    ]
    assert [blk.n_voxels for blk in blocks] == [50, 50, 50, 10]
    assert_same_result(assemble_encoding_result(blocks, ["B"], {"B": 10}, 40), one)


def test_fdr_is_over_all_voxels_not_per_batch():
    # strong voxels in the first batch, weak ones in the second: BH per batch would
    # pass weak ones that BH over all 20 voxels does not (and vice versa)
    r = np.array([0.9] * 8 + [0.33, 0.34] + [0.0] * 8 + [0.36, 0.37])
    blocks = [EncodingBlock(r=r[a:b], r2=r[a:b] ** 2, r2_split=None, best_alphas=np.ones(b - a))
              for a, b in voxel_batches(20, 10)]  # fmt: skip
    res = assemble_encoding_result(blocks, ["z"], {"z": 5}, n_test=40, q=0.05)
    p = correlation_pvalues(r, 40)
    np.testing.assert_array_equal(res.p, p)
    np.testing.assert_array_equal(res.significant, fdr_significant(p, 0.05))
    per_batch = np.concatenate([fdr_significant(p[:10], 0.05), fdr_significant(p[10:], 0.05)])
    assert not np.array_equal(per_batch, res.significant)  # the case tells the two apart


def test_fdr_over_all_voxels_in_a_batched_fit():
    d = _planted(2, scale=0.08)
    res = _analyses(d, None, voxel_batch_size=40).results["A"]
    np.testing.assert_array_equal(res.significant, fdr_significant(res.p, res.q))
    batches = voxel_batches(160, 40)
    per_batch = np.concatenate([fdr_significant(res.p[a:b], res.q) for a, b in batches])
    assert not np.array_equal(per_batch, res.significant)  # per batch would have differed


def test_each_feature_set_is_reduced_once(monkeypatch):
    from brainldm.encoding import _models

    calls = []
    real = _models.reduce_features

    def counting(X_train, X_test, *args, **kwargs):
        calls.append(X_train.shape)
        return real(X_train, X_test, *args, **kwargs)

    monkeypatch.setattr(_models, "reduce_features", counting)
    d = _planted(3)
    an = run_encoding_analyses(
        d["train"], d["Ytr"], d["test"], d["Yte"], singles=["A", "B"], pairs=[("A", "B")],
        layer_sets={"step": ["A", "B"]}, groups=d["groups"],
        options=FitOptions(n_components=6, alphas=(10.0, 100.0)),
        execution=Execution(voxel_batch_size=64),
    )  # fmt: skip
    assert calls == [(120, 12), (120, 16)]  # distinct training images, one PCA per feature set
    assert sorted(an.results) == ["A", "A+B", "B"] and an.best_layers["step"].shape == (160,)


def test_block_scores_alphas_as_the_whole_model():
    """Every block solves its CV folds as a fit over all voxels would, whatever its width."""
    from brainldm.ridge import RidgeCV, grouped_folds

    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(240), 2)
    X = rng.standard_normal((240, 96))[ids].astype(np.float32)
    Y = rng.standard_normal((480, 240)).astype(np.float32)
    grid = tuple(10.0 ** np.arange(7))
    folds = grouped_folds(ids, n_splits=5, random_state=0)
    whole = RidgeCV(alphas=grid, cv=folds, standardize_X=False).fit(X, Y).cv_strategy_
    alone = RidgeCV(alphas=grid, cv=folds, standardize_X=False).fit(X, Y[:, :40]).cv_strategy_
    assert whole != alone  # the case tells the two apart
    space = reduce_space("X", X, X[:10], ids, n_components=None)
    assert model_cv_strategy([space], 240, ids, alphas=grid) == whole
    assert model_cv_strategy([space], 40, ids, alphas=grid) == alone
    assert model_cv_strategy([space, space], 240, ids, alphas=grid) == "woodbury"  # dual


def test_errors():
    d = _planted()
    fit = dict(train=d["train"], test=d["test"], Y_train=d["Ytr"], Y_test=d["Yte"], singles=["A"])
    with pytest.raises(ValueError, match="voxel_batch_size=0 is not valid"):
        run_encoding_analyses(**fit, execution=Execution(voxel_batch_size=0))
    with pytest.raises(ValueError, match="executor='dask' is not valid"):
        run_encoding_analyses(**fit, execution="dask")
    with pytest.raises(TypeError, match="execution must be an Execution"):
        run_encoding_analyses(**fit, execution={"executor": "ray"})
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\), got 2"):
        run_encoding_analyses(**fit, options=FitOptions(q=2))
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\), got 2"):
        fit_encoding_model(d["train"], d["Ytr"], d["test"], d["Yte"], q=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_components'"):
        run_encoding_analyses(**fit, n_components=5)  # model options go in FitOptions
    with pytest.raises(ValueError, match="same voxels"):
        fit_encoding_model({"A": d["train"]["A"]}, d["Ytr"], {"A": d["test"]["A"]}, d["Yte"][:, :5])
    with pytest.raises(ValueError, match="blocks is empty"):
        assemble_encoding_result([], ["A"], {"A": 1}, 40)
