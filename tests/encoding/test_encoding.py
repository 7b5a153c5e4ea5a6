import re

import numpy as np
import pytest

from brainldm.encoding import (
    EncodingAnalyses,
    EncodingResult,
    FitOptions,
    best_layer,
    correlation_pvalues,
    fdr_significant,
    fit_encoding_model,
    reduce_features,
    run_encoding_analyses,
)


def _planted(seed, n_img=240, n_test=50, reps=2, n_vox=(60, 60, 120), scale=0.2):
    """Voxels planted on A, on B, and null; features A, B independent Gaussians."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_img + n_test, 16))
    B = rng.standard_normal((n_img + n_test, 24))
    ids_tr = np.repeat(np.arange(n_img), reps)
    ids_te = np.arange(n_img, n_img + n_test)
    Wa = rng.standard_normal((16, n_vox[0])) * scale
    Wb = rng.standard_normal((24, n_vox[1])) * scale

    def responses(ids, noise):
        Y = rng.standard_normal((len(ids), sum(n_vox))) * noise
        Y[:, : n_vox[0]] += A[ids] @ Wa
        Y[:, n_vox[0] : n_vox[0] + n_vox[1]] += B[ids] @ Wb
        return Y

    return dict(A=A, B=B, ids_tr=ids_tr, ids_te=ids_te, Ytr=responses(ids_tr, 1.0),
                Yte=responses(ids_te, 0.6), n_vox=n_vox)  # fmt: skip


def _fit(d, spaces, **kw):
    return fit_encoding_model(
        {s: d[s][d["ids_tr"]] for s in spaces}, d["Ytr"], {s: d[s][d["ids_te"]] for s in spaces},
        d["Yte"], groups=d["ids_tr"], n_components=None, **kw,
    )  # fmt: skip


def test_pvalues_match_monte_carlo():
    rng = np.random.default_rng(0)
    n = 20
    null = np.array([np.corrcoef(rng.standard_normal(n), rng.standard_normal(n))[0, 1]
                     for _ in range(20000)])  # fmt: skip
    for r in (0.1, 0.3, 0.5):
        expected = pytest.approx((null >= r).mean(), abs=0.01)
        assert correlation_pvalues(np.array([r]), n)[0] == expected
    with pytest.raises(ValueError, match="n must be > 2"):
        correlation_pvalues(np.array([0.1]), 2)


def test_fdr_matches_bh_by_hand():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    # BH: largest k with p_(k) <= k q / m; q = 0.05, m = 10 -> k = 2
    np.testing.assert_array_equal(fdr_significant(p, 0.05), [True, True] + [False] * 8)
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\), got 1.5"):
        fdr_significant(p, 1.5)


def test_planted_spaces_recovered_and_fdr_controlled():
    fdp, coverage = [], []
    for seed in range(20):
        d = _planted(seed, n_vox=(100, 60, 300))
        a, b = _fit(d, ["A"]), _fit(d, ["B"])
        na, nb, _ = d["n_vox"]
        # voxels planted on A are best predicted by A, those on B by B
        assert (a.r[:na] > b.r[:na]).mean() > 0.95
        assert (b.r[na : na + nb] > a.r[na : na + nb]).mean() > 0.95
        coverage.append(a.significant[:na].mean())
        false = a.significant[na:].sum()
        fdp.append(false / max(a.significant.sum(), 1))
    assert np.mean(coverage) >= 0.9
    assert np.mean(fdp) <= 0.05


def test_joint_model_unique_variance_sign():
    d = _planted(7)
    an = run_encoding_analyses(
        {s: d[s][d["ids_tr"]] for s in "AB"}, d["Ytr"], {s: d[s][d["ids_te"]] for s in "AB"},
        d["Yte"], singles=["A", "B"], pairs=[("A", "B")], groups=d["ids_tr"],
        options=FitOptions(n_components=None),
    )  # fmt: skip
    na, nb, _ = d["n_vox"]
    ua, ub = an.unique_variance("A", "A+B"), an.unique_variance("B", ("A", "B"))
    assert ua is an.unique["A|A+B"] and ub is an.unique["B|A+B"]
    with pytest.raises(KeyError, match="no unique variance of 'C' in model 'A\\+B'"):
        an.unique_variance("C", "A+B")
    assert (ua[:na] > ub[:na]).mean() > 0.9  # A voxels: A explains unique variance
    assert (ub[na : na + nb] > ua[na : na + nb]).mean() > 0.9
    joint = an.results["A+B"]
    assert joint.r2_split.shape == (2, sum(d["n_vox"]))
    assert joint.r2_split[0, :na].mean() > joint.r2_split[1, :na].mean()


@pytest.mark.parametrize("reading", ["split", "difference"])
def test_unique_variance_readings(reading):
    """"split" is the joint banded model's per-space share of R² (Figures 7-8: "splitting
    accuracy values from the combined model"); "difference" is R²(joint) − R²(other alone)."""
    d = _planted(11)
    an = run_encoding_analyses(
        {s: d[s][d["ids_tr"]] for s in "AB"}, d["Ytr"], {s: d[s][d["ids_te"]] for s in "AB"},
        d["Yte"], pairs=[("A", "B")], groups=d["ids_tr"],
        options=FitOptions(n_components=None), unique_variance=reading,
    )  # fmt: skip
    joint, a, b = an.results["A+B"], an.results["A"], an.results["B"]
    ua, ub = an.unique_variance("A", "A+B"), an.unique_variance("B", "A+B")
    assert an.unique_reading == reading
    if reading == "split":
        np.testing.assert_array_equal(ua, joint.r2_split[0])
        np.testing.assert_array_equal(ub, joint.r2_split[1])
        # the shares sum to the joint R² once the test-set mean error is removed (ridge's
        # r2_score_split), which can only raise it
        assert np.all(ua + ub >= joint.r2 - 1e-6)
    else:
        np.testing.assert_allclose(ua, joint.r2 - b.r2)
        np.testing.assert_allclose(ub, joint.r2 - a.r2)
    na, nb, _ = d["n_vox"]
    assert (ua[:na] > ub[:na]).mean() > 0.9  # planted on A: A's share is larger
    assert (ub[na : na + nb] > ua[na : na + nb]).mean() > 0.9


def test_unique_variance_reading_checked():
    d = _planted(1)
    with pytest.raises(ValueError, match="unique_variance.*'ratio'.*split.*difference"):
        run_encoding_analyses({"A": d["A"][d["ids_tr"]]}, d["Ytr"], {"A": d["A"][d["ids_te"]]},
                              d["Yte"], singles=["A"], unique_variance="ratio")  # fmt: skip


def test_best_layer_recovers_planted_layers():
    rng = np.random.default_rng(3)
    n_img, n_test = 200, 50
    layers = [rng.standard_normal((n_img + n_test, 12)) for _ in range(3)]
    assign = np.repeat([0, 1, 2, -1], 30)
    ids_tr, ids_te = np.repeat(np.arange(n_img), 2), np.arange(n_img, n_img + n_test)

    weights = [rng.standard_normal((12, (assign == k).sum())) * 0.25 for k in range(3)]

    def responses(ids, noise):
        Y = rng.standard_normal((len(ids), len(assign))) * noise
        for k in range(3):
            Y[:, assign == k] += layers[k][ids] @ weights[k]
        return Y

    Ytr, Yte = responses(ids_tr, 1.0), responses(ids_te, 0.5)
    names = ["L0", "L1", "L2"]
    an = run_encoding_analyses(
        {n: layers[k][ids_tr] for k, n in enumerate(names)}, Ytr,
        {n: layers[k][ids_te] for k, n in enumerate(names)}, Yte,
        layer_sets={"middle": names}, groups=ids_tr, options=FitOptions(n_components=None),
    )  # fmt: skip
    best = an.best_layers["middle"]
    assert (best[assign >= 0] == assign[assign >= 0]).mean() > 0.9
    assert (best[assign == -1] == -1).mean() > 0.8
    r, significant = np.array([[0.1, 0.5], [0.3, 0.2]]), np.array([[True, False], [True, False]])
    np.testing.assert_array_equal(best_layer(r, significant), [1, -1])


def test_pca_never_sees_test_data():
    rng = np.random.default_rng(0)
    Xtr = rng.standard_normal((100, 30))
    Xte = rng.standard_normal((10, 30))
    a_tr, a_te = reduce_features(Xtr, Xte, n_components=5)
    Xte_wild = Xte * 1000 + 50  # test rows that would dominate any PCA that saw them
    b_tr, b_te = reduce_features(Xtr, Xte_wild, n_components=5)
    np.testing.assert_allclose(a_tr, b_tr)  # the projection depends on training rows only
    from sklearn.decomposition import PCA

    # each feature standardised with the training rows' mean and sd, then their PCA
    mean, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    ref = PCA(5, random_state=0).fit((Xtr - mean) / sd)
    np.testing.assert_allclose(np.abs(b_te), np.abs(ref.transform((Xte_wild - mean) / sd)),
                               rtol=1e-3, atol=1e-2)  # fmt: skip
    # the scores keep their variances (no whitening): the PCA's explained variances
    np.testing.assert_allclose(a_tr.var(axis=0, ddof=1), ref.explained_variance_, rtol=1e-4)
    full_tr, full_te = reduce_features(Xtr, Xte, n_components=None)
    assert full_tr.shape == (100, 30)
    np.testing.assert_allclose(full_te, (Xte - mean) / sd, rtol=1e-5, atol=1e-5)


def test_result_roundtrip(tmp_path):
    d = _planted(1)
    res = _fit(d, ["A", "B"])
    loaded = EncodingResult.load(res.save(tmp_path / "AB.npz"))
    np.testing.assert_array_equal(loaded.r, res.r)
    np.testing.assert_array_equal(loaded.r2_split, res.r2_split)
    assert loaded.spaces == ("A", "B") and loaded.n_test == 50


def test_errors():
    d = _planted(0)
    with pytest.raises(ValueError, match="must name the same feature spaces"):
        fit_encoding_model({"A": d["A"][d["ids_tr"]]}, d["Ytr"], {"B": d["B"][d["ids_te"]]},
                           d["Yte"])
    with pytest.raises(ValueError, match=r"feature space 'A': 10 train"):
        fit_encoding_model({"A": d["A"][:10]}, d["Ytr"], {"A": d["A"][d["ids_te"]]}, d["Yte"])
    with pytest.raises(ValueError, match=r"feature sets \['C'\] are not in train/test"):
        run_encoding_analyses({"A": d["A"]}, d["Ytr"], {"A": d["A"]}, d["Yte"], singles=["C"])


def test_pca_with_as_many_components_as_images_keeps_the_signal():
    """PCA scores keep their variances: with k = n_images a whitened space would predict nothing."""
    rng = np.random.default_rng(1)
    n_img, p, n_vox = 60, 800, 40
    latent = rng.standard_normal((n_img + 20, 8))  # features: a few strong directions + noise
    X = latent @ rng.standard_normal((8, p)) + 0.3 * rng.standard_normal((n_img + 20, p))
    Y = latent @ rng.standard_normal((8, n_vox)) + 0.5 * rng.standard_normal((n_img + 20, n_vox))
    ids = np.repeat(np.arange(n_img), 2)  # two trials per training image
    Ytr = Y[ids] + 0.5 * rng.standard_normal((len(ids), n_vox))
    args = ({"X": X[ids]}, Ytr, {"X": X[n_img:]}, Y[n_img:])
    full = fit_encoding_model(*args, groups=ids, n_components=None)
    reduced = fit_encoding_model(*args, groups=ids, n_components=256)
    assert reduced.n_components == {"X": n_img}
    assert np.median(full.r) > 0.7
    assert np.median(reduced.r) > 0.95 * np.median(full.r)


def _small_analyses():
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((70, 6)), rng.standard_normal((70, 9))
    tr = {"a": X[:50, :4], "b": X[:50, 4:], "l": X[:50, :2]}
    te = {"a": X[50:, :4], "b": X[50:, 4:], "l": X[50:, :2]}
    return run_encoding_analyses(
        tr, Y[:50], te, Y[50:], singles=["a"], pairs=[("a", "b")], layer_sets={"s": ["a", "l"]},
        options=FitOptions(n_components=None, cv=3, alphas=(1.0, 10.0)),
    )  # fmt: skip


def test_analyses_save_load_roundtrip(tmp_path):
    an = _small_analyses()
    folder = an.save(tmp_path / "enc")
    assert folder == tmp_path / "enc"
    assert {"a.npz", "a+b.npz", "b.npz", "l.npz", "unique.npz", "best_layers.npz",
            "analyses.json"} <= {p.name for p in folder.iterdir()}  # fmt: skip
    with np.load(folder / "unique.npz") as u:  # the file's keys: "|" written "__in__"
        assert sorted(u.files) == ["a__in__a+b", "b__in__a+b"]
    back = EncodingAnalyses.load(folder)
    assert list(back.results) == list(an.results) == ["a", "a+b", "b", "l"]
    assert list(back.unique) == list(an.unique) == ["a|a+b", "b|a+b"]
    assert list(back.best_layers) == ["s"] and back.layer_names == {"s": ["a", "l"]}
    for name, res in an.results.items():
        got = back.results[name]
        assert (got.name, got.spaces, got.n_components, got.q, got.n_test) == (
            res.name, res.spaces, res.n_components, res.q, res.n_test)  # fmt: skip
        for field in ("r", "p", "significant", "r2", "r2_split", "best_alphas"):
            np.testing.assert_array_equal(getattr(got, field), getattr(res, field))
    for key, values in an.unique.items():
        np.testing.assert_array_equal(back.unique[key], values)
    np.testing.assert_array_equal(back.best_layers["s"], an.best_layers["s"])
    assert back.best_layers["s"].dtype == an.best_layers["s"].dtype
    np.testing.assert_array_equal(back.unique_variance("b", ("a", "b")), an.unique["b|a+b"])
    assert not list(folder.glob(".tmp-*"))  # atomic writes leave no temporaries


@pytest.mark.parametrize("missing", ["analyses.json", "a+b.npz", "a.npz.json", "unique.npz",
                                     "best_layers.npz"])  # fmt: skip
def test_analyses_load_names_the_missing_file(tmp_path, missing):
    folder = _small_analyses().save(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing} is missing")):
        EncodingAnalyses.load(folder)


def test_analyses_save_refuses_clashing_names(tmp_path):
    an = _small_analyses()
    an.results["unique"] = an.results["a"]
    with pytest.raises(ValueError, match=r"model name\(s\) \['unique'\] clash"):
        an.save(tmp_path)
