"""Banded (group) ridge: one alpha per feature space, chosen by cross-validation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from brainldm._utils import check_positive_int
from brainldm.ridge._backend import get_ops
from brainldm.ridge._base import _CV_NOTES_DOC, _CV_PARAMS_DOC, _BaseRidgeCV, _check_alphas
from brainldm.ridge._folds import contiguous_order, internal_folds
from brainldm.ridge._presets import DEFAULT_ALPHAS
from brainldm.ridge._scoring import r2_score_split
from brainldm.ridge._search import alpha_groups, banded_candidates, search_alphas

logger = logging.getLogger(__name__)


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
        return banded_candidates(_check_alphas("alphas", self.alphas, ndim=(1, 2)), n_spaces)

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
        kind = self.solver_ = self._solver_kind(n, p)
        self.n_splits_ = len(folds)
        shared = alpha_groups(cands, sizes)  # one decomposition per ratio of alphas
        logger.info(
            "BandedRidgeCV: X %s in %d spaces, Y %s, %s solver, %d candidates, "
            "%d decompositions, %d folds",
            X.shape, len(sizes), Y.shape, kind, len(cands), len(shared), len(folds),
        )
        perm, folds = contiguous_order(folds, n)
        Xw = ops.asarray(self._prepare_X(X, perm), ops.dtype(self.dtype))
        found = search_alphas(
            ops, Xw, Y, shared, len(cands), np.log(cands).mean(1), internal_folds(folds, n),
            kind, perm, self._search_options(),
        )  # fmt: skip
        self._set_coef(found.W, found.y_mean, found.y_scale, ravel)
        self.alpha_candidates_ = cands
        best = found.best
        self.best_alphas_ = cands[best].T[:, 0] if ravel else cands[best].T
        self.cv_scores_ = found.cv_scores
        self.cv_strategy_ = found.cv_strategy
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
