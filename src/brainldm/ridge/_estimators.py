"""scikit-learn estimators: Ridge, RidgeCV and BandedRidgeCV.

The estimators validate, standardise, loop over target batches and store
fitted attributes; the linear algebra lives in ``_solvers``.
"""

from __future__ import annotations

import itertools
import logging
import numbers
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted, validate_data

from brainldm._utils import check_option, check_positive_int
from brainldm.ridge import _solvers
from brainldm.ridge._backend import DTYPES, get_ops
from brainldm.ridge._folds import contiguous_order, internal_folds, resolve_folds
from brainldm.ridge._scoring import r2_score, r2_score_split

logger = logging.getLogger(__name__)

SOLVERS = ("auto", "primal", "dual")
CV_STRATEGIES = ("auto", "woodbury", "eigh_per_fold")

#: Default alpha grid of :class:`RidgeCV` and :class:`BandedRidgeCV`: 1 to
#: 1e6, one value per decade. On standardised X the useful alphas scale with
#: n_samples, so wide grids are the norm in fMRI; check ``best_alphas_`` for
#: targets at the edges (logged at INFO).
DEFAULT_ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)

#: The seed code's ridge settings (``codes/utils/ridge.py``; see
#: ``seed_code.md`` §4), as keyword arguments of :class:`RidgeCV`. The seed runs
#: ``make_pipeline(StandardScaler(), himalaya.ridge.RidgeCV(alphas))`` with
#: himalaya's defaults. Use :func:`takagi2023_ridge` to build it.
TAKAGI2023_RIDGE = MappingProxyType(
    {
        # Grid for c and init_latent (z); the seed uses [1e4, 2e4, 4e4] only for
        # its technical-paper targets (blip, vgg, dpt).
        "alphas": (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0),
        # himalaya cv=5 -> sklearn KFold(5) without shuffling: contiguous trial
        # blocks, which leak repeated images across folds (use grouped_folds).
        "cv": 5,
        "alpha_per_target": True,  # himalaya local_alpha=True
        "scoring": "neg_mean_squared_error",  # himalaya l2_neg_loss
        # himalaya fit_intercept=False, and Y is neither centred nor scaled, so
        # the model cannot carry the mean of Y (departs from our default).
        "fit_intercept": False,
        "standardize_X": True,  # StandardScaler() fit on the training trials
        "standardize_Y": False,
        "dtype": "float32",  # the seed feeds float32 arrays to himalaya
    }
)


def takagi2023_ridge(**overrides: Any) -> RidgeCV:
    """Return a :class:`RidgeCV` configured as in the seed code of the paper.

    Takagi & Nishimoto (CVPR 2023) fit their decoders with a scikit-learn
    ``StandardScaler`` followed by himalaya's ``RidgeCV`` with its defaults:
    5-fold unshuffled ``KFold``, one alpha per target picked by the negative
    L2 loss from ``[1e-6, 1e-5, ..., 1]``, **no intercept on uncentred Y**.
    :data:`TAKAGI2023_RIDGE` lists these settings; this function applies
    ``overrides`` on top.

    Two of them are known weaknesses, kept only to reproduce the paper: the
    missing intercept (a target's mean cannot be predicted, e.g. the constant
    BOS-token row of the CLIP embedding), and the unshuffled K-fold that puts
    repeats of one image on both sides of a fold. Our defaults
    (``fit_intercept=True``) and ``cv=grouped_folds(nsd_ids)`` fix them.

    Parameters
    ----------
    **overrides
        Any :class:`RidgeCV` parameter, e.g. ``cv=grouped_folds(nsd_ids)``.

    Returns
    -------
    model : RidgeCV
        Unfitted.

    Examples
    --------
    >>> takagi2023_ridge().fit_intercept
    False
    >>> takagi2023_ridge(backend="torch").backend
    'torch'
    """
    return RidgeCV(**{**TAKAGI2023_RIDGE, **overrides})


# --------------------------------------------------------------------------- validation


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
        Y = check_array(
            Y, ensure_2d=False, dtype=(np.float64, np.float32), ensure_all_finite=False,
            input_name="Y",
        )
        if Y.ndim not in (1, 2):
            raise ValueError(
                f"Y must be 1-D or 2-D (n_samples, n_targets), got shape {Y.shape}."
            )
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} samples (rows) but Y has {Y.shape[0]}; they must have the "
                "same number of rows."
            )
        _check_finite("Y", Y)
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
        q = Y.shape[1]
        for start in range(0, q, self.n_targets_batch):
            sl = slice(start, min(q, start + self.n_targets_batch))
            Yb = np.asarray(Y[:, sl] if perm is None else Y[perm, sl], dtype=np.float64)
            mean = Yb.mean(0) if center else np.zeros(Yb.shape[1])
            Yb = Yb - mean
            scale = np.ones(Yb.shape[1])
            if standardize:
                std = np.sqrt((Yb**2).mean(0))
                scale[std > 0] = std[std > 0]
                Yb /= scale
            yield sl, Yb.astype(self.dtype), mean, scale

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
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="batch", disable=not self.progress)

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


# --------------------------------------------------------------------------- CV search


def _search(
    est: _BaseRidge,
    ops: Any,
    Xw: Any,
    Y: np.ndarray,
    candidates: list[tuple[Any, np.ndarray, np.ndarray]],
    n_candidates: int,
    log_alpha: np.ndarray,
    folds: list,
    kind: str,
    perm: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid search over alphas by exact K-fold CV, then refit.

    ``candidates`` lists, per design scaling, ``(column_scale, alphas,
    candidate_indices)``: the design is ``Xw * column_scale`` (None: unscaled)
    and the ridge alphas are ``alphas``. One decomposition per entry.

    Returns W (n_features, n_targets) in working units, best candidate per
    target, cv_scores (n_candidates, n_targets), y_mean, y_scale.
    """
    dt = ops.dtype(est.dtype)
    p, q = Xw.shape[1], Y.shape[1]
    center = est.fit_intercept
    n_batches = -(-q // est.n_targets_batch)
    W = np.zeros((p, q), dtype=est.dtype)
    cv = np.full((n_candidates, q), -np.inf)
    y_mean, y_scale = np.zeros(q), np.ones(q)
    best = np.full(q, -1, dtype=np.int64)
    best_adj = np.full(q, -np.inf)
    per_target = est.alpha_per_target
    total = n_batches * len(candidates) + (0 if per_target else n_batches)
    with est._progress(total, type(est).__name__) as bar:
        for scale, alphas, idx in candidates:
            Xg = Xw if scale is None else Xw * scale[None, :]
            dec = _solvers.decompose(ops, Xg, kind, center)
            del Xg
            strategy = est._strategy(dec, folds, len(alphas), q)
            if strategy == "woodbury":
                prepared = _solvers.fold_inverses(ops, dec, folds, alphas)
                scorer = _solvers.cv_scores
            else:
                prepared = _solvers.fold_eighs(ops, dec, folds)
                scorer = _solvers.cv_scores_per_fold
            batches = est._y_batches(Y, center, est.standardize_Y, perm)
            for sl, Yb, y_mean[sl], y_scale[sl] in batches:
                scores, B = scorer(
                    ops, dec, ops.asarray(Yb, dt), folds, prepared, alphas, est.scoring
                )
                mean = scores.mean(0)
                cv[idx, sl] = mean
                if per_target:
                    # Ties go to the larger alpha, as in himalaya.
                    adj = mean + 1e-10 * log_alpha[idx][:, None]
                    a = np.argmax(adj, axis=0)
                    val = adj[a, np.arange(len(a))]
                    better = (val > best_adj[sl]) | (best[sl] < 0)
                    if better.all():
                        cols = np.arange(len(better))
                        Wb = _solvers.weights(ops, dec, B, alphas[a])
                    elif better.any():
                        cols = np.flatnonzero(better)
                        Wb = _solvers.weights(ops, dec, B[:, ops.index(cols)], alphas[a[cols]])
                    if better.any():
                        Wb = ops.to_numpy(Wb)
                        if scale is not None:
                            Wb = Wb * ops.to_numpy(scale)[:, None]
                        W[:, sl if better.all() else sl.start + cols] = Wb
                        best_adj[sl.start + cols] = val[cols]
                        best[sl.start + cols] = idx[a[cols]]
                del B
                bar.update()
            del dec, prepared
        if not per_target:
            overall = cv.mean(1) + 1e-10 * log_alpha
            c = int(np.argmax(overall))
            best[:] = c
            for scale, alphas, idx in candidates:
                if c in idx:
                    alpha = float(alphas[list(idx).index(c)])
                    Xg = Xw if scale is None else Xw * scale[None, :]
                    factor = _solvers.factor_fixed(ops, Xg, alpha, kind)
                    dec = None
                    if factor is None:
                        dec = _solvers.decompose(ops, Xg, kind, center)
                    for sl, Yb, _, _ in est._y_batches(Y, center, est.standardize_Y, perm):
                        Yb = ops.asarray(Yb, dt)
                        if factor is not None:
                            Wb = _solvers.solve_fixed(ops, Xg, factor, Yb, kind)
                        else:
                            Wb = _solvers.weights(ops, dec, dec.Q.T @ Yb, alpha)
                        Wb = ops.to_numpy(Wb)
                        if scale is not None:
                            Wb = Wb * ops.to_numpy(scale)[:, None]
                        W[:, sl] = Wb
                        bar.update()
    return W, best, cv, y_mean, y_scale


def _log_edges(chosen: np.ndarray, grid: np.ndarray) -> None:
    if len(grid) > 1:
        low, high = np.mean(chosen == grid.min()), np.mean(chosen == grid.max())
        logger.info(
            "%.1f%% of targets chose the smallest alpha and %.1f%% the largest; extend the "
            "grid if either is large.", 100 * low, 100 * high,
        )


class _BaseRidgeCV(_BaseRidge):
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

    def _strategy(self, dec: Any, folds: list, n_alphas: int, n_targets: int) -> str:
        """Pick how the folds are solved; sets ``cv_strategy_``."""
        strategy = self.cv_strategy
        if strategy == "auto":
            if dec.kind == "dual":
                strategy = "woodbury"
            else:
                cost = _solvers.cost_estimates(
                    dec.n_samples, int(dec.Q.shape[1]), folds, n_alphas, n_targets
                )
                strategy = min(cost, key=cost.get)
        self.cv_strategy_ = strategy
        return strategy


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
        count: typically per-fold for encoding models (few features, many
        targets) and Woodbury for decoders from many voxels.
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
        candidates = [(None, alphas, np.arange(len(alphas)))]
        W, best, cv, y_mean, y_scale = _search(
            self, ops, Xw, Y, candidates, len(alphas), np.log(alphas),
            internal_folds(folds, n), kind, perm,
        )
        self._set_coef(W, y_mean, y_scale, ravel)
        self.best_alphas_ = alphas[best][0] if ravel else alphas[best]
        self.cv_scores_ = cv
        _log_edges(alphas[best], alphas)
        return self


# --------------------------------------------------------------------------- banded


class BandedRidgeCV(_BaseRidgeCV):
    __doc__ = f"""Joint ridge over several feature spaces, one alpha per space, chosen by CV.

    With feature spaces ``X = [X_1, ..., X_m]`` (column blocks), minimises
    for each target::

        ||y - sum_i X_i w_i - b||^2 + sum_i alpha_i ||w_i||^2

    choosing the vector ``(alpha_1, ..., alpha_m)`` by K-fold CV from a grid
    (banded ridge, Nunez-Elizalde et al. 2019; himalaya's
    ``BandedRidgeCV``). Use ``predict(X, split=True)`` and
    ``score(X, Y, split=True)`` to split the prediction and its R² between
    the spaces, e.g. for the unique variance of z and c in the encoding
    analysis.

    Parameters
    ----------
    feature_spaces : sequence of int or None, default=None
        Number of columns of each space, in order; they must sum to
        ``n_features``. None: taken from the blocks when X is a list of
        arrays, else one space.
    alphas : array-like of shape (n_alphas,) or (n_candidates, n_spaces), default=DEFAULT_ALPHAS
        1-D: the per-space grid; every combination (``n_alphas ** n_spaces``)
        is tried. 2-D: explicit candidate vectors. Combinations that differ
        only by a common factor share one decomposition, so a 1-D grid costs
        ``(2 * n_alphas - 1) ** (n_spaces - 1)`` decompositions.
    {_CV_PARAMS_DOC}

    Attributes
    ----------
    best_alphas_ : ndarray of shape (n_spaces, n_targets)
        Chosen alpha of each space, per target.
    alpha_candidates_ : ndarray of shape (n_candidates, n_spaces)
        The candidate alpha vectors, in the order of ``cv_scores_``.
    cv_scores_ : ndarray of shape (n_candidates, n_targets)
        Validation score of every candidate, averaged over folds.
    feature_spaces_ : list of slice
        Columns of each space in X.
    coef_ : ndarray of shape (n_features, n_targets) or (n_features,)
        Weights on the raw X (all spaces stacked).
    intercept_ : ndarray of shape (n_targets,) or float
        ``predict(X) == X @ coef_ + intercept_``.
    X_mean_ : ndarray of shape (n_features,)
        Training mean of X used for centring.
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
        Number of features seen in ``fit`` (all spaces).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when X was a DataFrame with string column names.

    Notes
    -----
    A candidate ``(alpha_1, ..., alpha_m)`` is solved as a plain ridge with
    alpha ``alpha_1`` on the rescaled design ``[X_i * sqrt(alpha_1 /
    alpha_i)]``.{_CV_NOTES_DOC}

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xa, Xb = rng.standard_normal((80, 3)), rng.standard_normal((80, 2))
    >>> Y = Xa @ rng.standard_normal((3, 4)) + 0.5 * rng.standard_normal((80, 4))
    >>> model = BandedRidgeCV(alphas=(0.1, 10, 1000)).fit([Xa, Xb], Y)
    >>> model.best_alphas_.shape, model.score([Xa, Xb], Y, split=True).shape
    ((2, 4), (2, 4))
    """

    def __init__(
        self,
        feature_spaces: Sequence[int] | None = None,
        alphas: Any = DEFAULT_ALPHAS,
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
        self.feature_spaces = feature_spaces
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

    @staticmethod
    def _stack(X: Any) -> tuple[Any, list[int] | None]:
        if isinstance(X, (list, tuple)) and len(X) and all(
            hasattr(x, "shape") and len(x.shape) == 2 for x in X
        ):
            return np.hstack([np.asarray(x) for x in X]), [int(x.shape[1]) for x in X]
        return X, None

    def _spaces(self, sizes_from_X: list[int] | None, n_features: int) -> list[int]:
        sizes = self.feature_spaces
        if sizes is None:
            return sizes_from_X if sizes_from_X is not None else [n_features]
        try:
            sizes = [check_positive_int("feature_spaces", s) for s in sizes]
        except TypeError:
            raise TypeError(
                f"feature_spaces must be a sequence of positive ints, got {sizes!r}."
            ) from None
        if sizes_from_X is not None and sizes != sizes_from_X:
            raise ValueError(
                f"feature_spaces={sizes} does not match the blocks of X, of widths "
                f"{sizes_from_X}."
            )
        if sum(sizes) != n_features:
            raise ValueError(
                f"feature_spaces={sizes} sums to {sum(sizes)} but X has {n_features} features."
            )
        return sizes

    def _candidates(self, n_spaces: int) -> np.ndarray:
        arr = _check_alphas("alphas", self.alphas, ndim=(1, 2))
        if arr.ndim == 1:
            return np.array(list(itertools.product(arr, repeat=n_spaces)))
        if arr.shape[1] != n_spaces:
            raise ValueError(
                f"alphas has shape {arr.shape}; a 2-D alphas needs one column per feature "
                f"space ({n_spaces})."
            )
        return arr

    def fit(self, X: Any, y: Any, groups: Any = None) -> BandedRidgeCV:
        """Choose the per-space alphas by cross-validation and fit the weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of arrays
            Training inputs; a list of (n_samples, n_features_i) blocks
            defines the feature spaces.
        y : array-like of shape (n_samples, n_targets) or (n_samples,)
            Training targets.
        groups : array-like of shape (n_samples,) or None, default=None
            Group label per row, passed to the splitter (an integer ``cv``
            then uses :func:`grouped_folds`).

        Returns
        -------
        self : BandedRidgeCV
        """
        X, sizes_from_X = self._stack(X)
        X, Y, ravel = self._validate_fit(X, y)
        n, p = X.shape
        sizes = self._spaces(sizes_from_X, p)
        edges = np.concatenate([[0], np.cumsum(sizes)])
        self.feature_spaces_ = [
            slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
        cands = self._candidates(len(sizes))
        folds = self._folds(self.cv, X, Y, groups)
        ops = get_ops(self.backend, self.device)
        dt = ops.dtype(self.dtype)
        kind = self.solver_ = self._solver_kind(n, p)
        self.n_splits_ = len(folds)
        # Group candidates by their ratios to the first space's alpha.
        log_c = np.log(cands)
        ratio_key = np.round(log_c - log_c[:, :1], 9)
        keys, which = np.unique(ratio_key, axis=0, return_inverse=True)
        which = which.reshape(-1)
        candidates = []
        for g, key in enumerate(keys):
            idx = np.flatnonzero(which == g)
            col_scale = np.repeat(np.exp(-key / 2), sizes)  # sqrt(alpha_1 / alpha_i)
            scale = None if np.all(col_scale == 1) else ops.asarray(col_scale, dt)
            candidates.append((scale, cands[idx, 0], idx))
        logger.info(
            "BandedRidgeCV: X %s in %d spaces, Y %s, %s solver, %d candidates, "
            "%d decompositions, %d folds",
            X.shape, len(sizes), Y.shape, kind, len(cands), len(candidates), len(folds),
        )
        perm, folds = contiguous_order(folds, n)
        Xw = ops.asarray(self._prepare_X(X, perm), dt)
        W, best, cv, y_mean, y_scale = _search(
            self, ops, Xw, Y, candidates, len(cands), log_c.mean(1),
            internal_folds(folds, n), kind, perm,
        )
        self._set_coef(W, y_mean, y_scale, ravel)
        self.alpha_candidates_ = cands
        self.best_alphas_ = cands[best].T[:, 0] if ravel else cands[best].T
        self.cv_scores_ = cv
        return self

    def predict(self, X: Any, split: bool = False) -> np.ndarray:
        """Predict targets, optionally split by feature space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of arrays
            Inputs, laid out as in ``fit``.
        split : bool, default=False
            If True, return each space's additive part ``(X_i - mean_i) @
            coef_i`` (centred with the training means), without the
            intercept; they sum to ``predict(X) - (intercept_ - X_mean_ @
            coef_)``.

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_targets), or (n_spaces,
            n_samples, n_targets) when ``split``; the target axis is dropped
            for a 1-D training Y.
        """
        X, _ = self._stack(X)
        if not split:
            return super().predict(X)
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        coef = self.coef_
        Xc = (X - self.X_mean_).astype(coef.dtype)
        return np.stack([Xc[:, sl] @ coef[sl] for sl in self.feature_spaces_])

    def score(
        self, X: Any, y: Any, sample_weight: None = None, split: bool = False
    ) -> np.ndarray | float:
        """R² per target, optionally split by feature space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of arrays
            Inputs, laid out as in ``fit``.
        y : array-like of shape (n_samples, n_targets) or (n_samples,)
            Observed targets.
        sample_weight : None
            Not supported; must be None.
        split : bool, default=False
            If True, return the per-space R² of :func:`r2_score_split`
            (product measure): it sums over spaces to the joint R² once the
            prediction's mean error on these samples is removed, i.e. exactly
            ``score(X, y)`` when that mean error is zero (always on the
            training data with ``fit_intercept=True``).

        Returns
        -------
        r2 : ndarray of shape (n_targets,), or (n_spaces, n_targets) when
            ``split``; the target axis is dropped for a 1-D y.
        """
        X, _ = self._stack(X)
        if not split:
            return super().score(X, y, sample_weight)
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported; it must be None.")
        Y = np.asarray(y, dtype=np.float64)
        parts = self.predict(X, split=True)
        if Y.ndim == 1:
            return r2_score_split(Y[:, None], parts.reshape(parts.shape[0], -1, 1))[:, 0]
        return r2_score_split(Y, parts)
