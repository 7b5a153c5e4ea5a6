"""scikit-learn estimators with one penalty for all features: Ridge and RidgeCV.

The estimators validate, standardise, loop over target batches and store
fitted attributes; the CV search lives in ``_search`` and the linear algebra
in ``_solvers``. :class:`~brainldm.ridge.BandedRidgeCV` is in ``_banded``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from brainldm.ridge import _solvers
from brainldm.ridge._backend import get_ops
from brainldm.ridge._base import (
    _CV_NOTES_DOC,
    _CV_PARAMS_DOC,
    _BaseRidge,
    _BaseRidgeCV,
    _check_alphas,
    _log_edges,
)
from brainldm.ridge._folds import contiguous_order, internal_folds
from brainldm.ridge._presets import DEFAULT_ALPHAS
from brainldm.ridge._search import alpha_groups, search_alphas

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- Ridge


class Ridge(_BaseRidge):
    """Ridge regression with a fixed alpha (one for all targets, or one per target).

    Minimises, for each target ``t``::

        ||y_t - X w_t - b_t||^2 + alpha_t ||w_t||^2

    on standardised X (``standardize_X=True``) with an unpenalised intercept
    ``b_t`` (``fit_intercept=True``). ``X`` is the estimator's input (voxels
    when decoding, stimulus features when encoding) and ``Y`` its targets.

    A scalar alpha is solved by a Cholesky factorisation of ``X^T X + a I``
    (primal, ``n_samples >= n_features``) or ``X X^T + a I`` (dual,
    otherwise); per-target alphas share one eigendecomposition.

    Parameters
    ----------
    alpha : float or array-like of shape (n_targets,), default=1.0
        Regularisation strength, > 0, on the scale of the standardised X.
    fit_intercept : bool, default=True
        Fit an unpenalised intercept (equivalently, centre X and Y with their
        training means). False reproduces the seed code (its Y is uncentred).
    standardize_X : bool, default=True
        Scale each feature to zero mean and unit variance (training
        statistics; constant features keep scale 1), as the seed's
        ``StandardScaler``. ``coef_`` is nevertheless reported in the units of
        the raw X.
    solver : {"auto", "primal", "dual"}, default="auto"
        ``"auto"`` picks primal when ``n_samples >= n_features``, else dual.
    dtype : {"float32", "float64"}, default="float32"
        Working precision and the dtype of ``coef_``.
    backend : {"numpy", "torch"}, default="numpy"
        Array library for the linear algebra. ``coef_`` is always a numpy
        array in host memory.
    device : str, default="cpu"
        ``"cpu"`` or a torch device such as ``"cuda"`` (needs backend="torch").
    n_targets_batch : int, default=2048
        Targets solved at once; bounds the memory to about
        ``n_samples * n_targets_batch`` working values beyond X and Y.
    progress : bool, default=False
        Show a tqdm progress bar over target batches.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_targets) or (n_features,)
        Weights on the raw X. Note the axis order: features first, as in
        himalaya (scikit-learn's ``Ridge.coef_`` is transposed).
    intercept_ : ndarray of shape (n_targets,) or float
        Offset such that ``predict(X) == X @ coef_ + intercept_``. It also
        absorbs the X centring, so it is non-zero with
        ``fit_intercept=False, standardize_X=True``.
    X_mean_ : ndarray of shape (n_features,)
        Training mean of X used for centring (zeros when X is not centred).
    X_scale_ : ndarray of shape (n_features,)
        Training standard deviation of X (ones unless ``standardize_X``).
    solver_ : str
        ``"primal"`` or ``"dual"``, the solver used.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when X was a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 4)); W = rng.standard_normal((4, 3))
    >>> model = Ridge(alpha=1e-3, dtype="float64").fit(X, X @ W + 2.0)
    >>> model.coef_.shape, np.allclose(model.coef_, W, atol=1e-3)
    ((4, 3), True)
    """

    def __init__(
        self,
        alpha: float | Sequence[float] = 1.0,
        *,
        fit_intercept: bool = True,
        standardize_X: bool = True,
        solver: Literal["auto", "primal", "dual"] = "auto",
        dtype: Literal["float32", "float64"] = "float32",
        backend: Literal["numpy", "torch"] = "numpy",
        device: str = "cpu",
        n_targets_batch: int = 2048,
        progress: bool = False,
    ):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.standardize_X = standardize_X
        self.solver = solver
        self.dtype = dtype
        self.backend = backend
        self.device = device
        self.n_targets_batch = n_targets_batch
        self.progress = progress

    def fit(self, X: Any, y: Any) -> Ridge:
        """Fit the weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples, n_targets) or (n_samples,)
            Training targets.

        Returns
        -------
        self : Ridge
        """
        X, Y, ravel = self._validate_fit(X, y)
        n, p = X.shape
        q = Y.shape[1]
        alpha = _check_alphas("alpha", self.alpha, ndim=(0, 1))
        if alpha.size not in (1, q):
            raise ValueError(
                f"alpha has {alpha.size} values but Y has {q} targets; give one alpha or one "
                "per target."
            )
        ops = get_ops(self.backend, self.device)
        dt = ops.dtype(self.dtype)
        kind = self.solver_ = self._solver_kind(n, p)
        Xw = ops.asarray(self._prepare_X(X), dt)
        logger.info("Ridge: X %s, Y %s, %s solver, alpha %s", X.shape, Y.shape, kind,
                    "per target" if alpha.size > 1 else float(alpha[0]))
        factor = dec = None
        if alpha.size == 1:
            factor = _solvers.factor_fixed(ops, Xw, float(alpha[0]), kind)
        if factor is None:  # per-target alphas, or Cholesky failed in low precision
            dec = _solvers.decompose(ops, Xw, kind, self.fit_intercept)
            alpha = np.broadcast_to(alpha, (q,))
        W = np.empty((p, q), dtype=self.dtype)
        y_mean, y_scale = np.zeros(q), np.ones(q)
        batches = self._y_batches(Y, self.fit_intercept, False)
        with self._progress(-(-q // self.n_targets_batch), "Ridge") as bar:
            for sl, Yb, y_mean[sl], y_scale[sl] in batches:
                Yb = ops.asarray(Yb, dt)
                if factor is not None:
                    Wb = _solvers.solve_fixed(ops, Xw, factor, Yb, kind)
                else:
                    Wb = _solvers.weights(ops, dec, dec.Q.T @ Yb, alpha[sl])
                W[:, sl] = ops.to_numpy(Wb)
                bar.update()
        self._set_coef(W, y_mean, y_scale, ravel)
        return self


class RidgeCV(_BaseRidgeCV):
    __doc__ = f"""Ridge regression with alpha chosen by K-fold cross-validation.

    For each target ``t`` (or for all targets jointly), picks the alpha from
    ``alphas`` with the best mean validation score over the folds, then
    refits on all the training rows::

        min_w ||y_t - X w - b_t||^2 + alpha_t ||w||^2

    ``X`` is the estimator's input (voxels when decoding, stimulus features
    when encoding) and ``Y`` its targets.

    Parameters
    ----------
    alphas : array-like of shape (n_alphas,), default=DEFAULT_ALPHAS
        Candidate regularisation strengths, > 0, on the scale of the
        standardised X (they grow with n_samples). Ties go to the larger.
    {_CV_PARAMS_DOC}

    Attributes
    ----------
    best_alphas_ : ndarray of shape (n_targets,) or float
        Chosen alpha per target.
    cv_scores_ : ndarray of shape (n_alphas, n_targets)
        Validation score of every alpha, averaged over folds (float64).
        ``-inf`` marks an alpha that was numerically singular on some fold.
    coef_ : ndarray of shape (n_features, n_targets) or (n_features,)
        Weights on the raw X (features first, as in himalaya).
    intercept_ : ndarray of shape (n_targets,) or float
        ``predict(X) == X @ coef_ + intercept_``; also absorbs the X centring.
    X_mean_ : ndarray of shape (n_features,)
        Training mean of X used for centring (zeros when X is not centred).
    X_scale_ : ndarray of shape (n_features,)
        Training standard deviation of X (ones unless ``standardize_X``).
    solver_ : str
        ``"primal"`` or ``"dual"``.
    cv_strategy_ : str
        ``"woodbury"`` or ``"eigh_per_fold"``, the strategy used (the last
        one, for BandedRidgeCV).
    n_splits_ : int
        Number of CV folds used.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when X was a DataFrame with string column names.

    Notes
    -----{_CV_NOTES_DOC}

    The paper's settings are :data:`TAKAGI2023_RIDGE` (see
    :func:`takagi2023_ridge`); our defaults differ in fitting an intercept.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 5))
    >>> Y = X @ rng.standard_normal((5, 3)) + rng.standard_normal((60, 3))
    >>> model = RidgeCV(alphas=(0.1, 1, 10, 100)).fit(X, Y)
    >>> model.best_alphas_.shape, model.cv_scores_.shape
    ((3,), (4, 3))
    """

    def __init__(
        self,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        *,
        cv: Any = 5,
        alpha_per_target: bool = True,
        scoring: Literal["neg_mean_squared_error", "r2", "correlation"] = (
            "neg_mean_squared_error"
        ),
        fit_intercept: bool = True,
        standardize_X: bool = True,
        standardize_Y: bool = False,
        solver: Literal["auto", "primal", "dual"] = "auto",
        cv_strategy: Literal["auto", "woodbury", "eigh_per_fold"] = "auto",
        dtype: Literal["float32", "float64"] = "float32",
        backend: Literal["numpy", "torch"] = "numpy",
        device: str = "cpu",
        n_targets_batch: int = 2048,
        progress: bool = False,
    ):
        self.alphas = alphas
        self.cv = cv
        self.alpha_per_target = alpha_per_target
        self.scoring = scoring
        self.fit_intercept = fit_intercept
        self.standardize_X = standardize_X
        self.standardize_Y = standardize_Y
        self.solver = solver
        self.cv_strategy = cv_strategy
        self.dtype = dtype
        self.backend = backend
        self.device = device
        self.n_targets_batch = n_targets_batch
        self.progress = progress

    def fit(self, X: Any, y: Any, groups: Any = None) -> RidgeCV:
        """Choose alphas by cross-validation and fit the weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples, n_targets) or (n_samples,)
            Training targets.
        groups : array-like of shape (n_samples,) or None, default=None
            Group label per row (e.g. 0-based ``nsd_id``), passed to the
            splitter; with an integer ``cv`` it selects :func:`grouped_folds`.

        Returns
        -------
        self : RidgeCV
        """
        X, Y, ravel = self._validate_fit(X, y)
        alphas = _check_alphas("alphas", self.alphas)
        n, p = X.shape
        folds = self._folds(self.cv, X, Y, groups)
        ops = get_ops(self.backend, self.device)
        kind = self.solver_ = self._solver_kind(n, p)
        self.n_splits_ = len(folds)
        logger.info(
            "RidgeCV: X %s, Y %s, %s solver, %d alphas, %d folds, alpha %s",
            X.shape, Y.shape, kind, len(alphas), len(folds),
            "per target" if self.alpha_per_target else "shared",
        )
        perm, folds = contiguous_order(folds, n)
        Xw = ops.asarray(self._prepare_X(X, perm), ops.dtype(self.dtype))
        found = search_alphas(
            ops, Xw, Y, alpha_groups(alphas), len(alphas), np.log(alphas),
            internal_folds(folds, n), kind, perm, self._search_options(),
        )  # fmt: skip
        self._set_coef(found.W, found.y_mean, found.y_scale, ravel)
        best = found.best
        self.best_alphas_ = alphas[best][0] if ravel else alphas[best]
        self.cv_scores_ = found.cv_scores
        self.cv_strategy_ = found.cv_strategy
        _log_edges(alphas[best], alphas)
        return self


