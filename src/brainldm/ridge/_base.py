"""Shared machinery of the ridge estimators: validation, standardisation, predict, score.

:class:`_BaseRidge` validates and standardises and stores the fitted
attributes; :class:`_BaseRidgeCV` adds the checks and options of the
cross-validated estimators, whose search lives in ``_search``.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted, validate_data

from brainldm._utils import check_option, check_positive_int
from brainldm.ridge import _solvers
from brainldm.ridge._backend import DTYPES
from brainldm.ridge._folds import resolve_folds
from brainldm.ridge._scoring import r2_score
from brainldm.ridge._search import CV_STRATEGIES, SearchOptions, progress_bar, target_batches
from brainldm.ridge._targets import IndexedRows

logger = logging.getLogger(__name__)

SOLVERS = ("auto", "primal", "dual")

def _check_finite(name: str, A: np.ndarray) -> None:
    """Raise a ValueError naming ``name`` if ``A`` holds NaN or infinity (in row blocks)."""
    step = max(1, (1 << 24) // max(1, A[0].size if A.ndim > 1 and len(A) else 1))
    for start in range(0, len(A), step):
        block = A[start : start + step]
        bad = ~np.isfinite(block)
        if bad.any():
            where = np.argwhere(bad)[0]
            where = (where[0] + start, *where[1:])
            n_nan = int(np.isnan(block).sum())
            raise ValueError(
                f"{name} contains NaN or infinity (first at index {tuple(int(i) for i in where)}"
                f"{', NaN' if n_nan else ', inf'}); ridge needs finite values: remove or impute "
                f"them before fitting."
            )


def _check_alphas(name: str, alphas: Any, ndim: tuple[int, ...] = (1,)) -> np.ndarray:
    given = alphas
    if isinstance(alphas, numbers.Number):
        alphas = [alphas]
    try:
        arr = np.asarray(alphas, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numbers, got {given!r}.") from None
    if arr.ndim not in ndim:
        raise ValueError(f"{name} must be {' or '.join(f'{d}-D' for d in ndim)}, got shape "
                         f"{arr.shape}.")
    if arr.size == 0:
        raise ValueError(
            f"{name} is empty; give at least one positive value, e.g. {name}=(0.1, 1, 10)."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = arr[~(np.isfinite(arr) & (arr > 0))]
        raise ValueError(
            f"{name} must be finite and > 0, got {name}={_short(given)} (bad values: "
            f"{_short(bad.tolist())})."
        )
    return arr


def _short(values: Any) -> str:
    text = repr(values if not isinstance(values, np.ndarray) else values.tolist())
    return text if len(text) <= 80 else text[:77] + "..."


class _BaseRidge(RegressorMixin, BaseEstimator):
    """Shared validation, preprocessing, batching, predict and score."""

    def _check_params(self) -> None:
        check_option("dtype", self.dtype, DTYPES)
        check_option("solver", self.solver, SOLVERS)
        check_positive_int("n_targets_batch", self.n_targets_batch)
        for name in ("fit_intercept", "standardize_X", "progress"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}.")

    def _validate_fit(self, X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        self._check_params()
        if Y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X = validate_data(
            self, X, reset=True, dtype=(np.float64, np.float32), ensure_all_finite=False
        )
        _check_finite("X", X)
        if isinstance(Y, IndexedRows):  # read a batch of targets at a time, never expanded
            if Y.shape[1] and not np.issubdtype(Y.dtype, np.floating):
                raise ValueError(f"Y must hold floats, got {Y.dtype}.")
            _check_finite("Y", Y.values)
        else:
            Y = check_array(
                Y, ensure_2d=False, dtype=(np.float64, np.float32), ensure_all_finite=False,
                input_name="Y",
            )
            _check_finite("Y", Y)
        if Y.ndim not in (1, 2):
            raise ValueError(
                f"Y must be 1-D or 2-D (n_samples, n_targets), got shape {Y.shape}."
            )
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} samples (rows) but Y has {Y.shape[0]}; they must have the "
                "same number of rows."
            )
        ravel = Y.ndim == 1
        if ravel:
            Y = Y[:, None]
        if Y.shape[1] == 0:
            raise ValueError("Y has 0 targets (columns); give at least one.")
        return X, Y, ravel

    def _solver_kind(self, n_samples: int, n_features: int) -> str:
        if self.solver != "auto":
            return self.solver
        return "primal" if n_samples >= n_features else "dual"

    def _prepare_X(self, X: np.ndarray, perm: np.ndarray | None = None) -> np.ndarray:
        """Set ``X_mean_``/``X_scale_``; return the working design (rows in ``perm`` order)."""
        n, p = X.shape
        center = self.standardize_X or self.fit_intercept
        mean = X.mean(0, dtype=np.float64) if center else np.zeros(p)
        scale = np.ones(p)
        step = max(1, (1 << 22) // max(1, p))
        if self.standardize_X:
            ss = np.zeros(p)
            for start in range(0, n, step):
                ss += ((X[start : start + step] - mean) ** 2).sum(0)
            std = np.sqrt(ss / n)
            scale = np.where(std > 10 * np.finfo(np.float64).eps * np.abs(mean), std, 1.0)
            scale[std == 0] = 1.0
        Xw = np.empty((n, p), dtype=self.dtype)
        for start in range(0, n, step):
            rows = slice(start, start + step) if perm is None else perm[start : start + step]
            Xw[start : start + step] = (X[rows] - mean) / scale
        self.X_mean_ = mean
        self.X_scale_ = scale
        return Xw

    def _y_batches(
        self, Y: np.ndarray, center: bool, standardize: bool, perm: np.ndarray | None = None
    ) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (columns, working Y block, its mean, its scale) per target batch."""
        return target_batches(Y, self.n_targets_batch, center, standardize, self.dtype, perm)

    def _set_coef(
        self, W: np.ndarray, y_mean: np.ndarray, y_scale: np.ndarray, ravel: bool
    ) -> None:
        """Store ``coef_``/``intercept_`` in the units of the original X and Y."""
        W /= self.X_scale_.astype(W.dtype)[:, None]
        W *= y_scale.astype(W.dtype)[None, :]
        intercept = y_mean.copy()
        for start in range(0, W.shape[1], self.n_targets_batch):  # float64 without a full copy
            sl = slice(start, start + self.n_targets_batch)
            intercept[sl] -= self.X_mean_ @ W[:, sl].astype(np.float64)
        self.coef_ = W[:, 0] if ravel else W
        self.intercept_ = intercept[0] if ravel else intercept.astype(W.dtype)

    def _progress(self, total: int, desc: str) -> Any:
        return progress_bar(total, desc, self.progress)

    def predict(self, X: Any) -> np.ndarray:
        """Predict targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New inputs, in the units of the training X (the standardisation
            learnt in ``fit`` is part of ``coef_`` and ``intercept_``).

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_targets) or (n_samples,)
            In the fitted ``dtype``; 1-D when ``fit`` got a 1-D Y.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        coef = self.coef_
        return X.astype(coef.dtype, copy=False) @ coef + self.intercept_

    def score(self, X: Any, y: Any, sample_weight: None = None) -> np.ndarray | float:
        """R² of the predictions, one value per target.

        Unlike scikit-learn's ``RegressorMixin.score`` this does not average
        over targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples, n_targets) or (n_samples,)
            Observed targets.
        sample_weight : None
            Not supported; must be None.

        Returns
        -------
        r2 : ndarray of shape (n_targets,), or float for 1-D y
        """
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported; it must be None.")
        return r2_score(y, self.predict(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags



def _log_edges(chosen: np.ndarray, grid: np.ndarray) -> None:
    if len(grid) > 1:
        low, high = np.mean(chosen == grid.min()), np.mean(chosen == grid.max())
        logger.info(
            "%.1f%% of targets chose the smallest alpha and %.1f%% the largest; extend the "
            "grid if either is large.", 100 * low, 100 * high,
        )


class _BaseRidgeCV(_BaseRidge):
    """Checks and search options shared by RidgeCV and BandedRidgeCV."""

    def _check_params(self) -> None:
        super()._check_params()
        check_option("scoring", self.scoring, _solvers.SCORINGS)
        check_option("cv_strategy", self.cv_strategy, CV_STRATEGIES)
        for name in ("alpha_per_target", "standardize_Y"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if self.standardize_Y and not self.fit_intercept:
            raise ValueError(
                "standardize_Y=True centres Y, which needs fit_intercept=True; got "
                "fit_intercept=False."
            )

    def _folds(self, cv: Any, X: np.ndarray, Y: np.ndarray, groups: Any) -> list:
        folds = resolve_folds(cv, X.shape[0], X, Y, groups)
        if self.cv_strategy == "eigh_per_fold" and self._solver_kind(*X.shape) == "dual":
            raise ValueError(
                "cv_strategy='eigh_per_fold' needs the primal solver (n_samples >= n_features "
                f"or solver='primal'), got n_samples={X.shape[0]}, n_features={X.shape[1]}, "
                f"solver={self.solver!r}; use cv_strategy='auto' or 'woodbury'."
            )
        return folds

    def _search_options(self) -> SearchOptions:
        """Return the estimator's parameters as the CV search reads them."""
        return SearchOptions(
            dtype=self.dtype, fit_intercept=self.fit_intercept, standardize_Y=self.standardize_Y,
            alpha_per_target=self.alpha_per_target, scoring=self.scoring,
            cv_strategy=self.cv_strategy, n_targets_batch=self.n_targets_batch,
            progress=self.progress, name=type(self).__name__,
        )  # fmt: skip


_CV_PARAMS_DOC = """
    cv : int, scikit-learn splitter or list of (train, test), default=5
        Folds for choosing alpha. An int gives scikit-learn's ``KFold``
        without shuffling (contiguous blocks, as himalaya and the seed), or
        :func:`grouped_folds` on the ``groups`` passed to ``fit``. Any
        splitter works (``split(X, Y, groups)`` is called), as does a list
        of (train, test) row-index arrays, e.g. from :func:`grouped_folds`.
        Rows that are in neither train nor test of a fold are allowed.
    alpha_per_target : bool, default=True
        Choose the alpha for each target separately (himalaya's
        ``local_alpha``); False chooses one alpha maximising the CV score
        averaged over targets.
    scoring : {"neg_mean_squared_error", "r2", "correlation"}, default="neg_mean_squared_error"
        Validation score, computed per fold and target, then averaged over
        folds (himalaya's default is the negative mean squared error).
    fit_intercept : bool, default=True
        Fit an unpenalised intercept (centre X and Y). The seed code uses
        False on uncentred Y: see :data:`TAKAGI2023_RIDGE`.
    standardize_X : bool, default=True
        Scale each feature to zero mean and unit variance with the statistics
        of all training rows (as a ``StandardScaler`` before the estimator).
    standardize_Y : bool, default=False
        Also scale each target to unit variance (needs ``fit_intercept``);
        predictions are returned in the original units. It changes the fit
        only through the CV score: with ``alpha_per_target=False`` every
        target then weighs the same in the choice of the shared alpha.
    solver : {"auto", "primal", "dual"}, default="auto"
        ``"auto"`` decomposes ``X^T X`` (primal) when ``n_samples >=
        n_features``, else the kernel ``X X^T`` (dual).
    cv_strategy : {"auto", "woodbury", "eigh_per_fold"}, default="auto"
        How the folds are solved; both are exact and give the same scores up
        to rounding. ``"woodbury"`` derives every fold from the one
        decomposition of all rows (see Notes); its cost per target grows
        with ``n_features + n_samples / n_folds``. ``"eigh_per_fold"``
        (primal only) also diagonalises each fold's Gram matrix, an extra
        ``n_features**3`` per fold, after which the cost per target grows
        with ``n_features`` only. ``"auto"`` picks the cheaper by a flop
        count (:func:`choose_cv_strategy`): typically per-fold for encoding
        models (few features, many targets) and Woodbury for decoders from
        many voxels.
    dtype : {"float32", "float64"}, default="float32"
        Working precision and the dtype of ``coef_``.
    backend : {"numpy", "torch"}, default="numpy"
        Array library for the linear algebra; no global state is changed.
    device : str, default="cpu"
        ``"cpu"``, or a torch device such as ``"cuda"`` (backend="torch").
    n_targets_batch : int, default=2048
        Targets processed at once. Memory beyond X, Y and ``coef_`` is about
        ``n_samples * (2 * n_features + 4 * n_targets_batch)`` working values,
        plus the fold matrices: ``n_alphas * n_samples**2 / n_folds`` values
        with Woodbury, ``n_folds * n_features**2`` per fold.
    progress : bool, default=False
        Show a tqdm progress bar over target batches."""

_CV_NOTES_DOC = """
    The whole training set is decomposed once; the validation residuals of
    every fold and alpha then follow exactly from the Woodbury identity
    ``Y_O - X_O W_{-O} = (I - H_OO)^{-1} (Y_O - X_O W)``, where ``O`` are the
    rows a fold leaves out and ``H`` the hat matrix. This equals refitting
    per fold (what himalaya does) up to rounding, at the cost of one
    decomposition instead of one per fold. The standardisation of X (and Y)
    uses all training rows, as a ``StandardScaler`` placed before the
    estimator in a pipeline would."""


