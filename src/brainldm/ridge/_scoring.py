"""Per-target scores: R², Pearson r, and the per-feature-space split of R²."""

from __future__ import annotations

from typing import Any

import numpy as np


def _pair(Y_true: Any, Y_pred: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    Y_true = np.asarray(Y_true, dtype=np.float64)
    Y_pred = np.asarray(Y_pred, dtype=np.float64)
    if Y_true.shape != Y_pred.shape:
        raise ValueError(
            f"Y_true and Y_pred must have the same shape, got {Y_true.shape} and {Y_pred.shape}."
        )
    if Y_true.ndim not in (1, 2):
        raise ValueError(
            f"Y_true must be 1-D or 2-D (n_samples, n_targets), got shape {Y_true.shape}."
        )
    ravel = Y_true.ndim == 1
    if ravel:
        Y_true, Y_pred = Y_true[:, None], Y_pred[:, None]
    if Y_true.shape[0] < 2:
        raise ValueError(f"scores need at least 2 samples, got n_samples={Y_true.shape[0]}.")
    return Y_true, Y_pred, ravel


def _out(values: np.ndarray, ravel: bool) -> np.ndarray | float:
    return float(values[0]) if ravel else values


def r2_score(Y_true: Any, Y_pred: Any) -> np.ndarray | float:
    """Coefficient of determination R², one value per target.

    ``1 - sum((y - y_pred)**2) / sum((y - mean(y))**2)``, computed in float64.
    A target with zero variance scores 0 (as in himalaya), not NaN.

    Parameters
    ----------
    Y_true : array-like of shape (n_samples, n_targets) or (n_samples,)
        Observed values.
    Y_pred : array-like of the same shape
        Predicted values.

    Returns
    -------
    r2 : ndarray of shape (n_targets,), or float for 1-D input
        Can be negative: a model worse than predicting the mean.

    Examples
    --------
    >>> r2_score([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]], [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    array([ 1., -2.])
    """
    Y_true, Y_pred, ravel = _pair(Y_true, Y_pred)
    sse = ((Y_true - Y_pred) ** 2).sum(0)
    sst = ((Y_true - Y_true.mean(0)) ** 2).sum(0)
    r2 = np.zeros_like(sse)
    ok = sst > 0
    r2[ok] = 1.0 - sse[ok] / sst[ok]
    return _out(r2, ravel)


def correlation_score(Y_true: Any, Y_pred: Any) -> np.ndarray | float:
    """Pearson correlation between observed and predicted values, per target.

    Computed over samples (rows), in float64. A constant column gives 0.

    Note that the seed code prints the correlation *per image across feature
    dimensions* (it transposes both arrays); for that, pass ``Y_true.T`` and
    ``Y_pred.T``.

    Parameters
    ----------
    Y_true : array-like of shape (n_samples, n_targets) or (n_samples,)
        Observed values.
    Y_pred : array-like of the same shape
        Predicted values.

    Returns
    -------
    r : ndarray of shape (n_targets,), or float for 1-D input
        In [-1, 1].

    Examples
    --------
    >>> correlation_score([1.0, 2.0, 3.0], [2.0, 4.0, 7.0])
    0.9933992677987828
    """
    Y_true, Y_pred, ravel = _pair(Y_true, Y_pred)
    a = Y_true - Y_true.mean(0)
    b = Y_pred - Y_pred.mean(0)
    denom = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    r = np.zeros(a.shape[1])
    ok = denom > 0
    r[ok] = (a * b).sum(0)[ok] / denom[ok]
    return _out(np.clip(r, -1.0, 1.0), ravel)


def r2_score_split(Y_true: Any, Y_pred_split: Any) -> np.ndarray:
    """Split R² between feature spaces whose predictions add up (product measure).

    For a joint linear model ``Y_pred = sum_i Y_pred_split[i] (+ offset)``,
    space ``i`` is credited with::

        R2_i = sum_t (2 y_t * p_it - p_it * sum_j p_jt) / sum_t y_t**2

    where ``y`` and every ``p_i`` are centred over samples. The values sum
    exactly to the R² of the joint prediction once its mean error on these
    samples is removed, i.e. to ``r2_score(Y_true, Y_pred - mean(Y_pred - Y_true))``;
    this equals ``r2_score(Y_true, Y_pred)`` whenever the mean error is zero
    (e.g. on the training data of a model with an intercept). A space's
    share can be negative. This is the product-measure decomposition of
    himalaya's ``r2_score_split`` (Dupré la Tour et al., 2022), made
    independent of the offset by the centring.

    Parameters
    ----------
    Y_true : array-like of shape (n_samples, n_targets)
        Observed values.
    Y_pred_split : array-like of shape (n_spaces, n_samples, n_targets)
        Each feature space's additive part of the prediction.

    Returns
    -------
    r2_split : ndarray of shape (n_spaces, n_targets)
        Per-space R²; ``r2_split.sum(0)`` is the joint R² described above.
    """
    Y_true = np.asarray(Y_true, dtype=np.float64)
    P = np.asarray(Y_pred_split, dtype=np.float64)
    if Y_true.ndim == 1:
        Y_true = Y_true[:, None]
        if P.ndim == 2:
            P = P[:, :, None]
    if P.ndim != 3 or P.shape[1:] != Y_true.shape:
        raise ValueError(
            "Y_pred_split must have shape (n_spaces, n_samples, n_targets) = "
            f"(n_spaces, {Y_true.shape[0]}, {Y_true.shape[1]}), got {P.shape}."
        )
    y = Y_true - Y_true.mean(0)
    P = P - P.mean(1, keepdims=True)
    total = P.sum(0)
    sst = (y**2).sum(0)
    ok = sst > 0
    out = np.zeros((P.shape[0], y.shape[1]))
    for i, p in enumerate(P):
        num = (2 * y * p - p * total).sum(0)
        out[i, ok] = num[ok] / sst[ok]
    return out
