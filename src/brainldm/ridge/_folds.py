"""Cross-validation folds: grouped by stimulus, and checked for the solvers."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from brainldm._utils import check_positive_int


def grouped_folds(
    nsd_ids: Any,
    n_splits: int = 5,
    *,
    random_state: int | np.random.Generator | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold splits that keep all repeats of one image in the same fold.

    NSD shows most images up to three times. With plain (unshuffled) K-fold,
    as in the seed code, repeats of one image land in both the training and
    the validation part of a fold, so cross-validation rewards too little
    regularisation. Grouping the folds by ``nsd_id`` removes that leak.

    Groups are dealt to folds largest first, each to the fold that holds the
    fewest samples so far, so fold sizes are as even as the groups allow.

    Parameters
    ----------
    nsd_ids : array-like of shape (n_samples,)
        Group label of each row, e.g. the 0-based NSD image id of each trial.
        Any hashable labels work.
    n_splits : int, default=5
        Number of folds; at least 2 and at most the number of distinct groups.
    random_state : int, numpy Generator or None, default=None
        None deals the groups in order of first appearance (deterministic, no
        shuffling). Otherwise the groups are shuffled with this seed first.

    Returns
    -------
    folds : list of (train, test) tuples
        ``n_splits`` pairs of sorted int64 row-index arrays. Every row is in
        exactly one ``test``; ``train`` is the complement of ``test``. Pass the
        list as ``cv=`` to :class:`RidgeCV` or any scikit-learn tool.

    Examples
    --------
    >>> folds = grouped_folds([7, 7, 3, 9, 3, 9, 1, 1], n_splits=2)
    >>> [test.tolist() for _, test in folds]
    [[0, 1, 3, 5], [2, 4, 6, 7]]
    """
    groups = np.asarray(nsd_ids)
    if groups.ndim != 1:
        raise ValueError(
            f"nsd_ids must be 1-D (one label per row), got an array of shape {groups.shape}."
        )
    n_splits = check_positive_int("n_splits", n_splits)
    labels, first, inverse, counts = np.unique(
        groups, return_index=True, return_inverse=True, return_counts=True
    )
    if n_splits < 2 or n_splits > len(labels):
        raise ValueError(
            f"n_splits={n_splits} is not valid for {len(labels)} distinct nsd_ids; "
            f"allowed: 2 to {len(labels)}."
        )
    order = np.argsort(first, kind="stable")  # first-appearance order
    if random_state is not None:
        rng = np.random.default_rng(random_state)
        order = rng.permutation(order)
    # Largest groups first; ties keep the (possibly shuffled) order above.
    order = order[np.argsort(-counts[order], kind="stable")]
    fold_of_group = np.empty(len(labels), dtype=np.int64)
    fold_sizes = np.zeros(n_splits, dtype=np.int64)
    for g in order:
        k = int(np.argmin(fold_sizes))
        fold_of_group[g] = k
        fold_sizes[k] += counts[g]
    # Number folds by their first row so the result does not depend on dealing order.
    fold_of_row = fold_of_group[inverse.reshape(-1)]
    first_row = np.array([np.flatnonzero(fold_of_row == k)[0] for k in range(n_splits)])
    rows = np.arange(len(groups))
    folds = []
    for k in np.argsort(first_row):
        test = rows[fold_of_row == k]
        train = rows[fold_of_row != k]
        folds.append((train, test))
    return folds


@dataclass(frozen=True)
class _Fold:
    """One fold as the solvers see it.

    ``omit`` are the rows left out of the fold's training set (the validation
    rows plus any rows the splitter leaves unused), as a slice when they are
    contiguous; ``test`` are the validation rows' positions within ``omit``.
    """

    omit: slice | np.ndarray
    test: slice | np.ndarray
    n_omit: int
    n_test: int


def _as_slice(idx: np.ndarray) -> slice | np.ndarray:
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def resolve_folds(
    cv: Any, n_samples: int, X: Any = None, Y: Any = None, groups: Any = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Turn ``cv`` into an explicit list of (train, test) index arrays, checked.

    ``cv`` may be an int (unshuffled ``KFold``, or :func:`grouped_folds` when
    ``groups`` is given), a scikit-learn splitter, or an iterable of
    (train, test) pairs.
    """
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        n_splits = int(cv)
        if n_splits < 2:
            raise ValueError(f"cv={cv!r} is not valid; an integer cv must be at least 2.")
        if groups is not None:
            return grouped_folds(groups, n_splits)
        if n_splits > n_samples:
            raise ValueError(
                f"cv={n_splits} folds need at least {n_splits} samples, got n_samples="
                f"{n_samples}."
            )
        from sklearn.model_selection import KFold

        splits: Iterable = KFold(n_splits).split(np.empty((n_samples, 0)))
    elif hasattr(cv, "split"):
        splits = cv.split(X, Y, groups)
    elif isinstance(cv, Iterable) and not isinstance(cv, (str, bytes)):
        splits = cv
    else:
        raise TypeError(
            f"cv must be an int, a scikit-learn splitter or a list of (train, test) index "
            f"arrays, got {type(cv).__name__}."
        )
    folds = []
    for i, pair in enumerate(splits):
        try:
            train, test = pair
        except (TypeError, ValueError):
            raise ValueError(f"cv fold {i} is not a (train, test) pair.") from None
        train = _check_index(f"cv fold {i} train", train, n_samples)
        test = _check_index(f"cv fold {i} test", test, n_samples)
        if len(np.intersect1d(train, test)):
            raise ValueError(f"cv fold {i}: train and test share rows; they must be disjoint.")
        folds.append((train, test))
    if not folds:
        raise ValueError("cv gave no folds; give at least one (train, test) pair.")
    return folds


def _check_index(name: str, idx: Any, n_samples: int) -> np.ndarray:
    idx = np.asarray(idx)
    if idx.dtype == bool:
        if idx.shape != (n_samples,):
            raise ValueError(f"{name} is a boolean mask of shape {idx.shape}; expected "
                             f"({n_samples},).")
        idx = np.flatnonzero(idx)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D array of integer row indices.")
    idx = np.unique(idx.astype(np.int64))
    if idx.size == 0:
        raise ValueError(f"{name} is empty; every fold needs training and test rows.")
    if idx[0] < 0 or idx[-1] >= n_samples:
        raise ValueError(
            f"{name} holds indices outside [0, {n_samples - 1}] (n_samples={n_samples})."
        )
    return idx


def contiguous_order(
    folds: list[tuple[np.ndarray, np.ndarray]], n_samples: int
) -> tuple[np.ndarray | None, list[tuple[np.ndarray, np.ndarray]]]:
    """Row order that makes every fold's left-out rows one contiguous block.

    Possible when the left-out sets are disjoint (K-fold, grouped folds); the
    solvers then slice instead of copying. Returns ``(perm, folds)`` with the
    folds re-indexed into the new order, or ``(None, folds)`` when the order
    is already right or no such order exists (e.g. ShuffleSplit).
    """
    every = np.arange(n_samples)
    omits = [np.setdiff1d(every, train, assume_unique=True) for train, _ in folds]
    stacked = np.concatenate(omits)
    if len(np.unique(stacked)) != len(stacked):
        return None, folds
    perm = np.concatenate([stacked, np.setdiff1d(every, stacked, assume_unique=True)])
    if np.array_equal(perm, every):
        return None, folds
    new_index = np.empty(n_samples, dtype=np.int64)
    new_index[perm] = every
    return perm, [(np.sort(new_index[tr]), np.sort(new_index[te])) for tr, te in folds]


def internal_folds(folds: list[tuple[np.ndarray, np.ndarray]], n_samples: int) -> list[_Fold]:
    """Express each fold by the rows its training set leaves out."""
    out = []
    every = np.arange(n_samples)
    for train, test in folds:
        omit = np.setdiff1d(every, train, assume_unique=True)
        pos = np.searchsorted(omit, test)
        out.append(_Fold(_as_slice(omit), _as_slice(pos), len(omit), len(test)))
    return out
