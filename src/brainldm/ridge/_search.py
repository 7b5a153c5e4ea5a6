"""Cross-validated alpha search: arrays in, chosen alphas and weights out.

The estimators validate and standardise; this module scores every alpha
candidate on every fold and refits (one eigendecomposition per design
scaling, see ``_solvers``). It knows nothing of scikit-learn:
:func:`search_alphas` takes the working design, the targets, the candidate
groups of :func:`alpha_groups` and a :class:`SearchOptions` record.
:func:`choose_cv_strategy` is the public hook that says how the folds are
solved.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from brainldm.ridge import _solvers
from brainldm.ridge._folds import _Fold, internal_folds, resolve_folds

CV_STRATEGIES = ("auto", "woodbury", "eigh_per_fold")


def choose_cv_strategy(
    n_samples: int,
    n_features: int,
    folds: Any,
    n_alphas: int,
    n_targets: int,
    *,
    solver: Literal["auto", "primal", "dual"] = "auto",
) -> Literal["woodbury", "eigh_per_fold"]:
    """How :class:`RidgeCV` with ``cv_strategy="auto"`` solves its folds for a problem size.

    Both strategies are exact; they differ in cost, and in their CV scores by
    rounding only. ``"woodbury"`` derives every fold from the decomposition of
    all rows; ``"eigh_per_fold"`` (primal solver only) also diagonalises each
    fold's Gram matrix. The cheaper one by a multiply-add count is chosen; the
    dual solver (``n_samples < n_features``) always uses Woodbury.

    Pass the result as ``cv_strategy=`` to fit several parts of one problem
    (e.g. blocks of targets) exactly as one fit over all targets would:
    the choice depends on ``n_targets``.

    Parameters
    ----------
    n_samples : int
        Training rows.
    n_features : int
        Columns of X. :class:`RidgeCV` itself uses the rank of its
        standardised X, once decomposed (the same for a full-rank X).
    folds : int or list of (train, test) index arrays
        The CV folds, as the ``cv`` of :class:`RidgeCV` (an int means
        unshuffled K-fold). Only their sizes matter.
    n_alphas : int
        Alphas scored on one decomposition (the grid size for
        :class:`RidgeCV`; for :class:`BandedRidgeCV`, the candidates that
        share one ratio of per-space alphas).
    n_targets : int
        Targets (columns of Y) of the whole fit.
    solver : {"auto", "primal", "dual"}, default="auto"
        As the estimator's ``solver``: ``"auto"`` is primal when
        ``n_samples >= n_features``.

    Returns
    -------
    strategy : {"woodbury", "eigh_per_fold"}

    Examples
    --------
    >>> choose_cv_strategy(1000, 50, 5, 7, 20000)
    'eigh_per_fold'
    >>> choose_cv_strategy(100, 5000, 5, 7, 10)
    'woodbury'
    """
    from brainldm._utils import check_option, check_positive_int

    for name, value in (("n_samples", n_samples), ("n_features", n_features),
                        ("n_alphas", n_alphas), ("n_targets", n_targets)):  # fmt: skip
        check_positive_int(name, value)
    check_option("solver", solver, ("auto", "primal", "dual"))
    if solver == "auto":
        solver = "primal" if n_samples >= n_features else "dual"
    fold_list = internal_folds(resolve_folds(folds, int(n_samples)), int(n_samples))
    return _choose(solver, int(n_samples), int(n_features), fold_list, int(n_alphas),
                   int(n_targets))  # fmt: skip


def _choose(kind: str, n_samples: int, k: int, folds: list[_Fold], n_alphas: int,
            n_targets: int) -> str:  # fmt: skip
    if kind == "dual":
        return "woodbury"
    cost = _solvers.cost_estimates(n_samples, k, folds, n_alphas, n_targets)
    return min(cost, key=cost.get)


@dataclass(frozen=True)
class SearchOptions:
    """Settings of the CV search, taken from the estimator's parameters.

    Attributes
    ----------
    dtype : {"float32", "float64"}
        Working precision and dtype of the weights.
    fit_intercept : bool
        Centre the targets (the design comes centred already).
    standardize_Y : bool
        Scale each target to unit variance for the CV scores.
    alpha_per_target : bool
        One alpha per target, else one shared alpha.
    scoring : {"neg_mean_squared_error", "r2", "correlation"}
    cv_strategy : {"auto", "woodbury", "eigh_per_fold"}
    n_targets_batch : int
        Targets scored at once.
    progress : bool
        Show a tqdm bar labelled ``name``.
    name : str
    """

    dtype: str = "float32"
    fit_intercept: bool = True
    standardize_Y: bool = False
    alpha_per_target: bool = True
    scoring: str = "neg_mean_squared_error"
    cv_strategy: str = "auto"
    n_targets_batch: int = 2048
    progress: bool = False
    name: str = "RidgeCV"


@dataclass(frozen=True)
class AlphaGroup:
    """Candidates solved with one decomposition: a scaling of the design and ridge alphas.

    Attributes
    ----------
    column_scale : ndarray of shape (n_features,) or None
        The design is ``Xw * column_scale`` (None: unscaled).
    alphas : ndarray of shape (n_group,)
        Ridge alphas on that design.
    index : ndarray of int, shape (n_group,)
        Rows of these candidates in the full candidate list.
    """

    column_scale: np.ndarray | None
    alphas: np.ndarray
    index: np.ndarray


@dataclass(frozen=True)
class SearchResult:
    """What :func:`search_alphas` returns.

    Attributes
    ----------
    W : ndarray of shape (n_features, n_targets)
        Weights in working units (standardised X, scaled Y).
    best : ndarray of int, shape (n_targets,)
        Chosen candidate per target.
    cv_scores : ndarray of shape (n_candidates, n_targets)
        Mean validation score of every candidate (``-inf``: singular).
    y_mean, y_scale : ndarray of shape (n_targets,)
        Centring and scaling of the targets.
    cv_strategy : str
        Strategy of the last decomposition.
    """

    W: np.ndarray
    best: np.ndarray
    cv_scores: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    cv_strategy: str


def banded_candidates(alphas: np.ndarray, n_spaces: int) -> np.ndarray:
    """Every per-space alpha vector of a 1-D grid, or a checked 2-D list of candidates.

    Parameters
    ----------
    alphas : ndarray of shape (n_alphas,) or (n_candidates, n_spaces)
    n_spaces : int

    Returns
    -------
    candidates : ndarray of shape (n_candidates, n_spaces)
    """
    if alphas.ndim == 1:
        return np.array(list(itertools.product(alphas, repeat=n_spaces)))
    if alphas.shape[1] != n_spaces:
        raise ValueError(
            f"alphas has shape {alphas.shape}; a 2-D alphas needs one column per feature "
            f"space ({n_spaces})."
        )
    return alphas


def alpha_groups(candidates: np.ndarray, sizes: list[int] | None = None) -> list[AlphaGroup]:
    """Group candidate alphas that share one decomposition.

    A banded candidate ``(alpha_1, ..., alpha_m)`` is a plain ridge with alpha
    ``alpha_1`` on the design whose space ``i`` is scaled by ``sqrt(alpha_1 /
    alpha_i)``: candidates with the same ratios to ``alpha_1`` share it.

    Parameters
    ----------
    candidates : ndarray of shape (n_candidates,) or (n_candidates, n_spaces)
        1-D: plain ridge alphas (one group, unscaled design).
    sizes : list of int, optional
        Columns of each space (2-D candidates only).

    Returns
    -------
    groups : list of AlphaGroup
    """
    if candidates.ndim == 1:
        return [AlphaGroup(None, candidates, np.arange(len(candidates)))]
    log_c = np.log(candidates)
    ratio_key = np.round(log_c - log_c[:, :1], 9)
    keys, which = np.unique(ratio_key, axis=0, return_inverse=True)
    which = which.reshape(-1)
    groups = []
    for g, key in enumerate(keys):
        idx = np.flatnonzero(which == g)
        col_scale = np.repeat(np.exp(-key / 2), sizes)  # sqrt(alpha_1 / alpha_i)
        scale = None if np.all(col_scale == 1) else col_scale
        groups.append(AlphaGroup(scale, candidates[idx, 0], idx))
    return groups


def target_batches(
    Y: np.ndarray, batch: int, center: bool, standardize: bool, dtype: str,
    perm: np.ndarray | None = None,
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray]]:  # fmt: skip
    """Yield (columns, working Y block, its mean, its scale) per batch of ``batch`` targets.

    ``Y`` has shape (n_samples, n_targets); its rows are taken in ``perm`` order.
    """
    q = Y.shape[1]
    for start in range(0, q, batch):
        sl = slice(start, min(q, start + batch))
        Yb = np.asarray(Y[:, sl] if perm is None else Y[perm, sl], dtype=np.float64)
        mean = Yb.mean(0) if center else np.zeros(Yb.shape[1])
        Yb = Yb - mean
        scale = np.ones(Yb.shape[1])
        if standardize:
            std = np.sqrt((Yb**2).mean(0))
            scale[std > 0] = std[std > 0]
            Yb /= scale
        yield sl, Yb.astype(dtype), mean, scale


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """Return a tqdm bar over ``total`` target batches (disabled unless ``enabled``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=not enabled)


def search_alphas(
    ops: Any,
    Xw: Any,
    Y: np.ndarray,
    groups: list[AlphaGroup],
    n_candidates: int,
    log_alpha: np.ndarray,
    folds: list[_Fold],
    kind: str,
    perm: np.ndarray | None,
    options: SearchOptions,
) -> SearchResult:
    """Grid search over alphas by exact K-fold CV, then refit.

    Parameters
    ----------
    ops : backend operations (``_backend.get_ops``)
    Xw : array of shape (n_samples, n_features)
        Working design (standardised, rows in ``perm`` order).
    Y : ndarray of shape (n_samples, n_targets)
        Raw targets (original row order).
    groups : list of AlphaGroup
        One decomposition each (:func:`alpha_groups`).
    n_candidates : int
    log_alpha : ndarray of shape (n_candidates,)
        Tie-break: ties go to the larger value (as in himalaya).
    folds : list of _Fold
    kind : {"primal", "dual"}
    perm : ndarray of int or None
        Row order of ``Xw`` (``contiguous_order``).
    options : SearchOptions

    Returns
    -------
    result : SearchResult
    """
    o = options
    dt = ops.dtype(o.dtype)
    p, q = Xw.shape[1], Y.shape[1]
    center = o.fit_intercept

    def batches():
        return target_batches(Y, o.n_targets_batch, center, o.standardize_Y, o.dtype, perm)

    n_batches = -(-q // o.n_targets_batch)
    W = np.zeros((p, q), dtype=o.dtype)
    cv = np.full((n_candidates, q), -np.inf)
    y_mean, y_scale = np.zeros(q), np.ones(q)
    best = np.full(q, -1, dtype=np.int64)
    best_adj = np.full(q, -np.inf)
    per_target = o.alpha_per_target
    strategy = o.cv_strategy
    total = n_batches * len(groups) + (0 if per_target else n_batches)
    with progress_bar(total, o.name, o.progress) as bar:
        for group in groups:
            alphas, idx = group.alphas, group.index
            scale = None if group.column_scale is None else ops.asarray(group.column_scale, dt)
            Xg = Xw if scale is None else Xw * scale[None, :]
            dec = _solvers.decompose(ops, Xg, kind, center)
            del Xg
            strategy = o.cv_strategy
            if strategy == "auto":
                strategy = _choose(dec.kind, dec.n_samples, int(dec.Q.shape[1]), folds,
                                   len(alphas), q)  # fmt: skip
            if strategy == "woodbury":
                prepared = _solvers.fold_inverses(ops, dec, folds, alphas)
                scorer = _solvers.cv_scores
            else:
                prepared = _solvers.fold_eighs(ops, dec, folds)
                scorer = _solvers.cv_scores_per_fold
            for sl, Yb, y_mean[sl], y_scale[sl] in batches():
                scores, B = scorer(ops, dec, ops.asarray(Yb, dt), folds, prepared, alphas,
                                   o.scoring)  # fmt: skip
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
            c = int(np.argmax(cv.mean(1) + 1e-10 * log_alpha))
            best[:] = c
            _refit_shared(ops, Xw, groups, c, kind, center, batches, W, bar, dt)
    return SearchResult(W, best, cv, y_mean, y_scale, strategy)


def _refit_shared(ops, Xw, groups, c, kind, center, batches, W, bar, dt) -> None:
    """Fill ``W`` with the weights of candidate ``c`` for every target."""
    for group in groups:
        if c not in group.index:
            continue
        alpha = float(group.alphas[list(group.index).index(c)])
        scale = None if group.column_scale is None else ops.asarray(group.column_scale, dt)
        Xg = Xw if scale is None else Xw * scale[None, :]
        factor = _solvers.factor_fixed(ops, Xg, alpha, kind)
        dec = None
        if factor is None:
            dec = _solvers.decompose(ops, Xg, kind, center)
        for sl, Yb, _, _ in batches():
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
