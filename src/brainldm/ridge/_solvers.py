"""Functional core: one eigendecomposition gives exact K-fold CV for every alpha.

Notation (``X`` is the working design, already standardised or centred;
``Y`` the working targets, centred when there is an intercept)::

    primal (n_samples >= n_features):
        X^T X = V diag(s) V^T,   Q = X V                      Q: (n, k)
        H(a)  = Q diag(1 / (s + a)) Q^T   [+ 1 1^T / n]       hat matrix
        W(a)  = V diag(1 / (s + a)) Q^T Y                     weights
    dual (n_samples < n_features):
        X X^T = U diag(s) U^T,   Q = U                        Q: (n, n)
        H(a)  = U diag(s / (s + a)) U^T   [+ 1 1^T / n]
        W(a)  = X^T U diag(1 / (s + a)) U^T Y

The ``1 1^T / n`` term is the unpenalised intercept (X and Y centred). For a
fold whose training set leaves out the rows ``O`` (its validation rows and
any unused ones), the validation residuals of the model refit without ``O``
follow from the full-data fit by the Woodbury identity::

    Y_O - X_O W_{-O}(a) = (I - H_OO(a))^{-1} (Y_O - X_O W(a))

This is exact (no approximation) for ridge with or without an unpenalised
intercept, and it is what per-fold refits (himalaya, scikit-learn's K-fold
grid search) compute, up to rounding. So one decomposition of the whole
training set serves every fold and every alpha, instead of one per fold. In
the dual, ``I - H`` is formed as ``U diag(a / (s + a)) U^T`` so that small
alphas do not cancel catastrophically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from brainldm.ridge._folds import _Fold

SCORINGS = ("neg_mean_squared_error", "r2", "correlation")


@dataclass(frozen=True)
class Decomposition:
    """Everything the CV scores and the weights need, for one design matrix.

    Attributes
    ----------
    kind : {"primal", "dual"}
    s : array of shape (k,)
        Eigenvalues; primal keeps only those above the rank tolerance, dual
        keeps all ``n`` and sets those below it to 0.
    Q : array of shape (n_samples, k)
        ``X V`` (primal) or ``U`` (dual).
    V : array of shape (n_features, k) or None
        Primal eigenvectors.
    X : array of shape (n_samples, n_features) or None
        The working design (dual only; the weights need it).
    intercept : bool
        Whether the hat matrix carries the ``1 1^T / n`` intercept term.
    """

    kind: str
    s: Any
    Q: Any
    V: Any
    X: Any
    intercept: bool

    @property
    def n_samples(self) -> int:
        return int(self.Q.shape[0])


def _rank_tolerance(s_max: float, shape: tuple[int, int], dtype: Any) -> float:
    eps = float(np.finfo(np.dtype(str(dtype).replace("torch.", ""))).eps)
    return max(s_max, 0.0) * eps * max(shape) ** 0.5


def decompose(ops: Any, X: Any, kind: str, intercept: bool) -> Decomposition:
    """Eigendecompose ``X^T X`` (primal) or ``X X^T`` (dual) of the working design."""
    if kind == "primal":
        s, V = ops.eigh(X.T @ X)
        tol = _rank_tolerance(float(s[-1]), X.shape, X.dtype)
        keep = s > tol
        if not bool(keep.all()):
            s, V = s[keep], V[:, keep]
        return Decomposition("primal", s, X @ V, V, None, intercept)
    s, U = ops.eigh(X @ X.T)
    tol = _rank_tolerance(float(s[-1]), X.shape, X.dtype)
    s = s * (s > tol)
    return Decomposition("dual", s, U, None, X, intercept)


def fold_inverses(ops: Any, dec: Decomposition, folds: list[_Fold], alphas: np.ndarray) -> list:
    """``(I - H_OO(a))^{-1}`` restricted to the validation rows, per fold and alpha.

    Returns a list (folds) of lists (alphas) of arrays of shape
    (n_test, n_omit), or None where the matrix is not positive definite in
    floating point (that alpha is then never selected for that fold).
    Memory: sum over folds of ``n_alphas * n_test * n_omit`` values.
    """
    f64 = ops.dtype("float64")
    n = dec.n_samples
    out = []
    for fold in folds:
        Qo = dec.Q[ops.index(fold.omit)]
        test = None if fold.n_test == fold.n_omit else ops.index(fold.test)
        row = []
        for alpha in alphas:
            alpha = float(alpha)
            if dec.kind == "primal":
                M = Qo * (1.0 / (dec.s + alpha)) ** 0.5
                L = M @ M.T
                L = ops.add_diag(-L, 1.0)
            else:
                M = Qo * (alpha / (dec.s + alpha)) ** 0.5
                L = M @ M.T
            del M
            L = ops.cast(L, f64)
            if dec.intercept:
                L -= 1.0 / n
            inv = ops.inv_spd(L)
            if inv is not None:
                if test is not None:
                    inv = inv[test]
                inv = ops.cast(inv, dec.Q.dtype)
            row.append(inv)
        out.append(row)
    return out


def cv_scores(
    ops: Any,
    dec: Decomposition,
    Y: Any,
    folds: list[_Fold],
    inverses: list,
    alphas: np.ndarray,
    scoring: str,
) -> tuple[np.ndarray, Any]:
    """Score every fold and alpha on a batch of targets (Woodbury strategy).

    Parameters
    ----------
    Y : array of shape (n_samples, n_targets_batch)
        Working targets (backend array).

    Returns
    -------
    scores : ndarray of shape (n_folds, n_alphas, n_targets_batch), float64
        ``-inf`` where the fold's matrix was not positive definite.
    B : array of shape (k, n_targets_batch)
        ``Q^T Y``, reused for the weights.
    """
    B = dec.Q.T @ Y
    scores = np.empty((len(folds), len(alphas), Y.shape[1]))
    parts = []  # per fold: rows left out, their Y, the validation Y, score statistics
    for fold in folds:
        omit = ops.index(fold.omit)
        Yo = Y[omit]
        Yt = Yo if fold.n_test == fold.n_omit else Yo[ops.index(fold.test)]
        parts.append((dec.Q[omit], Yo, Yt, _target_stats(ops, Yt, scoring)))
    for a, alpha in enumerate(alphas):
        alpha = float(alpha)
        if dec.kind == "primal":
            GB = B * (1.0 / (dec.s + alpha))[:, None]
        else:
            GB = B * (alpha / (dec.s + alpha))[:, None]
        for f, (Qo, Yo, Yt, stats) in enumerate(parts):
            inv = inverses[f][a]
            if inv is None:
                scores[f, a] = -np.inf
                continue
            R = Yo - Qo @ GB if dec.kind == "primal" else Qo @ GB  # full-data residuals
            E = inv @ R  # validation residuals of the model refit without the fold
            del R
            scores[f, a] = _score(ops, Yt, E, scoring, stats)
    return scores, B


@dataclass(frozen=True)
class _FoldEigh:
    """One fold's training Gram matrix, diagonalised in the full-data basis."""

    lam: Any  # (k,) eigenvalues of Q_tr^T Q_tr (centred on the fold's training rows)
    P: Any  # (k, k) its eigenvectors
    M: Any  # (n_test, k) validation rows, (Q_test - m) @ P
    m: Any  # (k,) training-row mean of Q (intercept only), else None
    n_train: int


def fold_eighs(ops: Any, dec: Decomposition, folds: list[_Fold]) -> list[_FoldEigh]:
    """Per-fold eigendecompositions for the ``"eigh_per_fold"`` CV strategy (primal only).

    In the basis ``Q = X V`` of the full data, fold ``f`` trains on ``Q_tr``
    with Gram ``diag(s) - Q_O^T Q_O`` (minus the fold's mean outer product
    with an intercept); diagonalising it (k x k) makes every alpha cheap.
    """
    n = dec.n_samples
    out = []
    for fold in folds:
        Qo = dec.Q[ops.index(fold.omit)]
        n_train = n - fold.n_omit
        G = ops.diag(dec.s) - Qo.T @ Qo
        m = None
        if dec.intercept:
            # X is centred over all rows, so the training rows' mean is -sum(Q_O) / n_train.
            m = -Qo.sum(0) / n_train
            G = G - n_train * (m[:, None] * m[None, :])
        G = (G + G.T) / 2
        lam, P = ops.eigh(G)
        del G
        lam = lam * (lam > 0)
        Qt = Qo if fold.n_test == fold.n_omit else Qo[ops.index(fold.test)]
        if m is not None:
            Qt = Qt - m
        out.append(_FoldEigh(lam, P, Qt @ P, m, n_train))
    return out


def cv_scores_per_fold(
    ops: Any,
    dec: Decomposition,
    Y: Any,
    folds: list[_Fold],
    eighs: list[_FoldEigh],
    alphas: np.ndarray,
    scoring: str,
) -> tuple[np.ndarray, Any]:
    """Score like :func:`cv_scores`, from per-fold eigendecompositions.

    When a fold has more validation rows than ``k`` and the score needs only
    the squared error, the error is expanded as ``|y|^2 - 2 y.p + p.p`` with
    ``k x k`` Gram matrices instead of forming the predictions.
    """
    B = dec.Q.T @ Y
    scores = np.empty((len(folds), len(alphas), Y.shape[1]))
    k = int(dec.Q.shape[1])
    for f, (fold, fe) in enumerate(zip(folds, eighs, strict=True)):
        omit = ops.index(fold.omit)
        Qo, Yo = dec.Q[omit], Y[omit]
        Yt = Yo if fold.n_test == fold.n_omit else Yo[ops.index(fold.test)]
        B_train = B - Qo.T @ Yo
        Yt_c = Yt
        if fe.m is not None:
            y_train = -Yo.sum(0) / fe.n_train
            B_train = B_train - fe.n_train * (fe.m[:, None] * y_train[None, :])
            Yt_c = Yt - y_train
        Z = fe.P.T @ B_train
        del B_train
        stats = _target_stats(ops, Yt, scoring)
        if scoring != "correlation" and fold.n_test > k:
            C = fe.M.T @ fe.M  # (k, k)
            T = fe.M.T @ Yt_c  # (k, b)
            yy = _f64(ops, (Yt_c * Yt_c).sum(0))
            for a, alpha in enumerate(alphas):
                Za = Z / (fe.lam + float(alpha))[:, None]
                sse = yy + _f64(ops, ((C @ Za - 2 * T) * Za).sum(0))
                scores[f, a] = _score_sse(np.maximum(sse, 0.0), fold.n_test, scoring, stats)
            continue
        for a, alpha in enumerate(alphas):
            E = Yt_c - fe.M @ (Z / (fe.lam + float(alpha))[:, None])
            scores[f, a] = _score(ops, Yt, E, scoring, stats)
    return scores, B


def cost_estimates(
    n_samples: int, k: int, folds: list[_Fold], n_alphas: int, n_targets: int
) -> dict[str, float]:
    """Rough multiply-add counts of the two primal CV strategies (eigh ~ 12 k^3)."""
    n_omit = np.array([f.n_omit for f in folds], dtype=float)
    n_test = np.array([f.n_test for f in folds], dtype=float)
    woodbury = n_alphas * np.sum(n_omit**2 * k / 2 + n_omit**3) + n_targets * (
        n_samples * k + n_alphas * np.sum(n_omit * k + n_test * n_omit)
    )
    per_alpha = np.minimum(n_test, k) * k  # Gram expansion when n_test > k
    per_fold = np.sum(12 * k**3 + n_omit * k**2 + n_test * k**2) + n_targets * (
        n_samples * k + np.sum(n_omit * k + k**2 + n_test * k + n_alphas * per_alpha)
    )
    return {"woodbury": float(woodbury), "eigh_per_fold": float(per_fold)}


def _f64(ops: Any, a: Any) -> np.ndarray:
    return ops.to_numpy(a).astype(np.float64)


def _target_stats(ops: Any, Yt: Any, scoring: str) -> Any:
    if scoring == "neg_mean_squared_error":
        return None
    Yc = Yt - Yt.mean(0)
    if scoring == "r2":
        return _f64(ops, (Yc * Yc).sum(0))
    return Yc, _f64(ops, (Yc * Yc).sum(0))


def _score_sse(sse: np.ndarray, n_test: int, scoring: str, stats: Any) -> np.ndarray:
    if scoring == "neg_mean_squared_error":
        return -sse / n_test
    out = np.zeros_like(sse)
    ok = stats > 0
    out[ok] = 1.0 - sse[ok] / stats[ok]
    return out


def _score(ops: Any, Yt: Any, E: Any, scoring: str, stats: Any) -> np.ndarray:
    if scoring != "correlation":
        return _score_sse(_f64(ops, (E * E).sum(0)), E.shape[0], scoring, stats)
    Yc, ss_true = stats
    P = Yt - E
    P = P - P.mean(0)
    num = _f64(ops, (Yc * P).sum(0))
    den = np.sqrt(ss_true * _f64(ops, (P * P).sum(0)))
    out = np.zeros_like(num)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def weights(ops: Any, dec: Decomposition, B: Any, alpha: Any) -> Any:
    """Ridge weights from ``B = Q^T Y`` with one alpha, or one alpha per column of B.

    Returns an array of shape (n_features, n_targets_batch).
    """
    a = ops.asarray(np.atleast_1d(np.asarray(alpha, dtype=np.float64)), dec.s.dtype)
    D = B / (dec.s[:, None] + a[None, :])
    if dec.kind == "primal":
        return dec.V @ D
    D = D * (dec.s > 0)[:, None]  # null directions of X X^T carry no weight
    return dec.X.T @ (dec.Q @ D)


def factor_fixed(ops: Any, X: Any, alpha: float, kind: str) -> Any:
    """Cholesky factor of ``X^T X + a I`` (primal) or ``X X^T + a I`` (dual), or None."""
    G = X.T @ X if kind == "primal" else X @ X.T
    return ops.cholesky(ops.add_diag(G, float(alpha)))


def solve_fixed(ops: Any, X: Any, factor: Any, Y: Any, kind: str) -> Any:
    """Ridge weights of shape (n_features, n_targets_batch) from a Cholesky factor."""
    if kind == "primal":
        return ops.cho_solve(factor, X.T @ Y)
    return X.T @ ops.cho_solve(factor, Y)
