"""Every input error names the parameter, what was given and what is allowed."""

import subprocess
import sys

import numpy as np
import pytest

from brainldm.ridge import BandedRidgeCV, Ridge, RidgeCV, grouped_folds, r2_score_split

rng = np.random.default_rng(0)
X = rng.standard_normal((20, 3))
Y = rng.standard_normal((20, 2))


def _with(A, index, value):
    A = A.copy()
    A[index] = value
    return A


@pytest.mark.parametrize("Est", [Ridge, RidgeCV, BandedRidgeCV])
def test_non_finite_inputs(Est):
    with pytest.raises(ValueError, match=r"X contains NaN or inf.* \(first at index \(4, 1\), NaN"):
        Est().fit(_with(X, (4, 1), np.nan), Y)
    with pytest.raises(ValueError, match=r"Y contains NaN or inf.* \(first at index \(2, 0\), inf"):
        Est().fit(X, _with(Y, (2, 0), np.inf))


@pytest.mark.parametrize("Est", [Ridge, RidgeCV, BandedRidgeCV])
def test_mismatched_rows(Est):
    with pytest.raises(ValueError, match="X has 20 samples .rows. but Y has 19; they must"):
        Est().fit(X, Y[:19])


def test_missing_y():
    with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
        RidgeCV().fit(X, None)


@pytest.mark.parametrize("Est", [RidgeCV, BandedRidgeCV])
def test_empty_alpha_grid(Est):
    with pytest.raises(ValueError, match=r"alphas is empty; give at least one positive value"):
        Est(alphas=()).fit(X, Y)


@pytest.mark.parametrize("bad", [(1.0, 0.0), (-1.0,), (1.0, np.nan)])
def test_non_positive_alphas(bad):
    with pytest.raises(ValueError, match=r"alphas must be finite and > 0, got alphas=\(.*bad val"):
        RidgeCV(alphas=bad).fit(X, Y)


def test_ridge_alpha():
    with pytest.raises(ValueError, match=r"alpha must be finite and > 0, got alpha=0"):
        Ridge(alpha=0).fit(X, Y)
    with pytest.raises(ValueError, match="alpha has 3 values but Y has 2 targets; give one alpha"):
        Ridge(alpha=[1, 2, 3]).fit(X, Y)
    with pytest.raises(TypeError, match="alpha must be numbers, got 'big'"):
        Ridge(alpha="big").fit(X, Y)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"dtype": "float16"}, "dtype='float16' is not valid; allowed: 'float32', 'float64'"),
        ({"solver": "svd"}, "solver='svd' is not valid; allowed: 'auto', 'primal', 'dual'"),
        ({"backend": "cupy"}, "backend='cupy' is not valid; allowed: 'numpy', 'torch'"),
        ({"device": "cuda"}, "device='cuda' is not valid with backend='numpy'; allowed: 'cpu'"),
        ({"scoring": "mse"}, "scoring='mse' is not valid; allowed: 'neg_mean_squared_error'"),
        ({"n_targets_batch": 0}, "n_targets_batch must be a positive integer, got 0"),
        ({"standardize_Y": True, "fit_intercept": False},
         "standardize_Y=True centres Y, which needs fit_intercept=True"),
        ({"cv": 1}, "cv=1 is not valid; an integer cv must be at least 2"),
        ({"cv_strategy": "fast"}, "cv_strategy='fast' is not valid; allowed: 'auto', 'woodbury'"),
        ({"cv_strategy": "eigh_per_fold", "solver": "dual"},
         "cv_strategy='eigh_per_fold' needs the primal solver .* solver='dual'"),
        ({"cv": 30}, "cv=30 folds need at least 30 samples, got n_samples=20"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        RidgeCV(**params).fit(X, Y)


def test_bad_folds():
    every = np.arange(20)
    with pytest.raises(ValueError, match="cv fold 0: train and test share rows"):
        RidgeCV(cv=[(every, every[:5])]).fit(X, Y)
    with pytest.raises(ValueError, match=r"cv fold 1 test holds indices outside \[0, 19\]"):
        RidgeCV(cv=[(every[5:], every[:5]), (every[:15], every[15:] + 1)]).fit(X, Y)
    with pytest.raises(ValueError, match="cv fold 0 train is empty"):
        RidgeCV(cv=[([], every)]).fit(X, Y)
    with pytest.raises(TypeError, match="cv must be an int, a scikit-learn splitter or a list"):
        RidgeCV(cv=2.5).fit(X, Y)
    with pytest.raises(ValueError, match="cv gave no folds"):
        RidgeCV(cv=[]).fit(X, Y)


def test_grouped_folds_errors():
    with pytest.raises(ValueError, match="n_splits=5 is not valid for 3 distinct nsd_ids; allowed"):
        grouped_folds([1, 1, 2, 3], n_splits=5)
    with pytest.raises(ValueError, match=r"nsd_ids must be 1-D .* shape \(2, 2\)"):
        grouped_folds([[1, 2], [3, 4]])


def test_banded_errors():
    with pytest.raises(ValueError, match=r"feature_spaces=\[2, 2\] sums to 4 but X has 3 features"):
        BandedRidgeCV([2, 2]).fit(X, Y)
    with pytest.raises(ValueError, match=r"feature_spaces=\[1, 2\] does not match the blocks"):
        BandedRidgeCV([1, 2]).fit([X[:, :2], X[:, 2:]], Y)
    with pytest.raises(ValueError, match=r"a 2-D alphas needs one column per feature space \(2\)"):
        BandedRidgeCV(alphas=[[1.0, 2.0, 3.0]]).fit([X[:, :2], X[:, 2:]], Y)
    with pytest.raises(ValueError, match=r"Y_pred_split must have shape \(n_spaces, n_samples"):
        r2_score_split(Y, Y)


def test_torch_backend_without_torch_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="backend='torch' needs torch; install it"):
        RidgeCV(backend="torch").fit(X, Y)


def test_import_loads_neither_torch_nor_himalaya():
    code = (
        "import sys, brainldm.ridge; "
        "print(','.join(m for m in ('torch', 'himalaya', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
