"""Voxel-wise encoding models: LDM features → brain (Takagi & Nishimoto 2023, §3.5).

The core of a fit, as plain functions of arrays. For a feature set (one
space, e.g. z, or several, e.g. z + zc), each space is reduced to at most
6,400 dimensions by PCA fitted on the training images only
(:func:`reduce_space`), a ridge model (one alpha per voxel, and per space for
joint models, chosen by grouped K-fold CV on the training trials) predicts a
block of voxels and is tested on the held-out shared images
(:func:`fit_voxel_block`), and the blocks are joined and tested voxel by voxel
over all voxels (:func:`assemble_encoding_result`). Ridge targets are
independent, so blocks give the one-shot fit once every block solves its CV
folds in the same way (:func:`model_cv_strategy`).

``_distribute`` runs these pieces as work items; ``_analyses`` builds the
paper's analyses on top. (Slightly over 500 lines: the three steps of one fit
and the records they pass, kept in one file so a fit reads top to bottom.)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainldm._utils import atomic_path, check_positive_int, write_json_atomic
from brainldm.config import EncodingConfig
from brainldm.encoding._stats import correlation_pvalues, fdr_significant, pearson_r

logger = logging.getLogger(__name__)

#: PCA size of each feature space in the paper (§3.5), as the config holds it.
PAPER_N_COMPONENTS = EncodingConfig.n_components


@dataclass
class EncodingResult:
    """Test accuracy of one encoding model, per voxel.

    Attributes
    ----------
    name : str
        Feature set, e.g. ``"z"`` or ``"z+zc_s0.50"``.
    spaces : tuple of str
        Feature spaces of the model, in order.
    r : ndarray of shape (n_voxels,)
        Pearson r between predicted and measured test responses.
    p : ndarray of shape (n_voxels,)
        One-sided p-value of ``r`` (independent-Gaussian null, n_test − 2 dof).
    significant : ndarray of bool, shape (n_voxels,)
        Benjamini-Hochberg at ``q``.
    r2 : ndarray of shape (n_voxels,)
        Test R².
    r2_split : ndarray of shape (n_spaces, n_voxels) or None
        For joint models, the test R² credited to each space.
    best_alphas : ndarray of shape (n_spaces, n_voxels) or (n_voxels,)
    n_components : dict of str to int
        Dimensions kept per space (after PCA).
    q : float
    n_test : int
    meta : dict
        Any other JSON-able facts, saved along.
    """

    name: str
    spaces: tuple[str, ...]
    r: np.ndarray
    p: np.ndarray
    significant: np.ndarray
    r2: np.ndarray
    r2_split: np.ndarray | None
    best_alphas: np.ndarray
    n_components: dict
    q: float
    n_test: int
    meta: dict = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (.npz) and ``path.json`` atomically."""
        path = Path(path)
        arrays = {k: getattr(self, k) for k in ("r", "p", "significant", "r2", "best_alphas")}
        if self.r2_split is not None:
            arrays["r2_split"] = self.r2_split
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        write_json_atomic(
            path.with_name(path.name + ".json"),
            {"name": self.name, "spaces": list(self.spaces), "n_components": self.n_components,
             "q": self.q, "n_test": self.n_test, **self.meta},  # fmt: skip
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> EncodingResult:
        """Read what :meth:`save` wrote."""
        path = Path(path)
        meta = json.loads(path.with_name(path.name + ".json").read_text())
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        return cls(
            name=meta.pop("name"), spaces=tuple(meta.pop("spaces")), r=arrays["r"], p=arrays["p"],
            significant=arrays["significant"], r2=arrays["r2"], r2_split=arrays.get("r2_split"),
            best_alphas=arrays["best_alphas"], n_components=meta.pop("n_components"),
            q=meta.pop("q"), n_test=meta.pop("n_test"), meta=meta,
        )  # fmt: skip


def reduce_features(
    X_train,
    X_test,
    n_components: int | None = PAPER_N_COMPONENTS,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Standardise each feature on the training rows, then exact PCA fitted on them; apply to both.

    The PCA is :func:`~brainldm.encoding.streamed_pca`: exact (equal to
    scikit-learn's full-SVD PCA up to sign), read in blocks of feature columns,
    so an on-disk feature set of 10^6 values per image never has to fit in
    memory. The component scores keep their variances: the ridge that follows
    must not rescale them, or it would give the weakest components as much
    weight as the strongest (with k near the number of images, an
    uninformative whitened space).

    Parameters
    ----------
    X_train : array-like of shape (n_train, ...)
        An ndarray (flattened to 2-D), or a 2-D on-disk view whose ``X[:, a:b]``
        reads a block of columns (e.g. :meth:`brainldm.features.FeatureStore.matrix`).
    X_test : array-like of shape (n_test, ...)
    n_components : int or None
        Dimensions kept (6,400 in the paper); None, or at least the number of
        features, keeps the standardised features.
    progress : bool
        A progress bar over column blocks.

    Returns
    -------
    Z_train : ndarray of float32, shape (n_train, k)
    Z_test : ndarray of float32, shape (n_test, k)
    """
    from brainldm.encoding._pca import streamed_pca

    pca = streamed_pca(_as_matrix(X_train), _as_matrix(X_test), n_components, progress=progress)
    return pca.train, pca.test


def _as_matrix(X):
    """Arrays flattened to 2-D; 2-D on-disk views (anything with ``shape``) as they are."""
    if isinstance(X, np.ndarray) or not hasattr(X, "shape"):
        X = np.asarray(X)
        return X.reshape(len(X), -1)
    if len(X.shape) != 2:
        raise ValueError(f"an on-disk feature matrix must be 2-D, got shape {X.shape}.")
    return X


def _distinct_rows(X, nsd_ids: np.ndarray) -> tuple[object, np.ndarray]:
    """Rows of X for each distinct nsd_id (features repeat with image repeats).

    Returns the rows (an on-disk view stays on disk: ``X.select_rows``) and,
    for each row of X, the index of its distinct row.
    """
    _, first, inverse = np.unique(nsd_ids, return_index=True, return_inverse=True)
    X = _as_matrix(X)
    rows = X[first] if isinstance(X, np.ndarray) else X.select_rows(first)
    return rows, inverse


@dataclass(frozen=True)
class ReducedSpace:
    """One feature space after PCA (fitted on the training images only): a ridge input.

    Attributes
    ----------
    name : str
        Feature set, e.g. ``"z"``.
    train : ndarray of float32, shape (n_train_rows, k)
        Reduced training rows: one per distinct training image when
        ``train_index`` is given, else one per training trial.
    test : ndarray of float32, shape (n_test, k)
        Reduced test rows.
    train_index : ndarray of int, shape (n_train,), or None
        Row of ``train`` for each training trial (an image's repeats share it).
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    train_index: np.ndarray | None = None

    @property
    def n_components(self) -> int:
        """Dimensions kept (k)."""
        return int(self.train.shape[1])

    def train_trials(self) -> np.ndarray:
        """Return the reduced features of every training trial, shape (n_train, k)."""
        return self.train if self.train_index is None else self.train[self.train_index]


def reduce_space(
    name: str,
    X_train,
    X_test,
    groups: np.ndarray | None = None,
    n_components: int | None = PAPER_N_COMPONENTS,
    progress: bool = False,
) -> ReducedSpace:
    """Reduce one feature space for the encoding models (PCA on the training images).

    Parameters
    ----------
    name : str
    X_train : array-like of shape (n_train, ...)
        One row per training trial: an ndarray (flattened to 2-D) or a 2-D
        on-disk view (see :func:`reduce_features`).
    X_test : array-like of shape (n_test, ...)
    groups : ndarray of int, shape (n_train,), optional
        ``nsd_id`` of each training trial: PCA is fitted once per distinct image.
    n_components : int or None
        See :func:`reduce_features`.
    progress : bool

    Returns
    -------
    space : ReducedSpace
    """
    rows, index = _as_matrix(X_train), None
    if groups is not None:  # PCA on each distinct training image once
        rows, index = _distinct_rows(rows, np.asarray(groups))
    Z_train, Z_test = reduce_features(rows, X_test, n_components, progress)
    return ReducedSpace(name, Z_train, Z_test, index)


@dataclass
class EncodingBlock:
    """Test accuracy of one encoding model on a block of voxels (target columns).

    Attributes
    ----------
    r : ndarray of shape (n_block,)
        Pearson r between predicted and measured test responses.
    r2 : ndarray of shape (n_block,)
        Test R².
    r2_split : ndarray of shape (n_spaces, n_block) or None
        For joint models, the test R² credited to each space.
    best_alphas : ndarray of shape (n_spaces, n_block) or (n_block,)
        Alpha(s) chosen by CV for each voxel: (n_block,) for one space.
    """

    r: np.ndarray
    r2: np.ndarray
    r2_split: np.ndarray | None
    best_alphas: np.ndarray

    @property
    def n_voxels(self) -> int:
        """Voxels of the block."""
        return int(len(self.r))


@dataclass(frozen=True)
class FitOptions:
    """Model options shared by every fit of a run.

    None of them is about where the fits run (that is
    :class:`~brainldm.distributed.Execution`); each changes the result.

    Attributes
    ----------
    n_components : int or None
        PCA size per space (6,400 in the paper); None skips PCA.
    alphas : sequence of float, optional
        Ridge grid (default ``EncodingConfig.alphas``, the encoding preset's).
    cv : int
        CV folds (grouped by image when the fit gets ``groups``).
    q : float
        FDR level, in (0, 1).
    backend : {"numpy", "torch"}
        Ridge backend.
    device : str
        Ridge device (``"cpu"``, or ``"cuda"`` with ``backend="torch"``); on
        Ray, a CUDA device gives each worker a GPU unless the execution says
        otherwise.
    random_state : int or None
        Seed of the grouped folds.
    progress : bool
        Progress bars.

    Examples
    --------
    >>> FitOptions(n_components=None, alphas=(1.0, 10.0)).cv
    5
    """

    # Defaults are the config's (brainldm.config.EncodingConfig), their one home.
    n_components: int | None = PAPER_N_COMPONENTS
    alphas: Sequence[float] | None = None
    cv: int = EncodingConfig.cv
    q: float = EncodingConfig.q
    backend: str = "numpy"
    device: str = "cpu"
    random_state: int | None = 0
    progress: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.q < 1:  # before the fits, not after
            raise ValueError(f"q must be in (0, 1), got {self.q!r}.")


def _folds(groups: np.ndarray | None, cv: int, random_state: int | None):
    """``cv`` of the ridge: grouped folds by image when ``groups`` is given."""
    from brainldm.ridge import grouped_folds

    return cv if groups is None else grouped_folds(groups, n_splits=cv, random_state=random_state)


def model_cv_strategy(
    spaces: Sequence[ReducedSpace],
    n_voxels: int,
    groups: np.ndarray | None = None,
    alphas: Sequence[float] | None = None,
    cv: int = 5,
    random_state: int | None = 0,
) -> str:
    """How the ridge of a whole model solves its CV folds, for :func:`fit_voxel_block`.

    The ridge picks how to solve its folds from the problem's size, the
    number of targets included (:func:`brainldm.ridge.choose_cv_strategy`).
    Both ways are exact but their CV scores differ by rounding, which could
    tip a near-tie between two alphas; giving every voxel block the strategy
    of the whole model makes the blocks' values those of one fit over all
    voxels. For a joint model the choice is the one for its decomposition
    with the most alphas (every space's alpha a common multiple).

    Parameters
    ----------
    spaces : sequence of ReducedSpace
        The model's feature spaces.
    n_voxels : int
        Voxels of the whole model.
    groups, alphas, cv, random_state
        As given to :func:`fit_voxel_block`.

    Returns
    -------
    cv_strategy : {"woodbury", "eigh_per_fold"}
    """
    from brainldm.ridge import choose_cv_strategy

    spaces = tuple(spaces)
    if not spaces:
        raise ValueError("spaces is empty: give at least one ReducedSpace.")
    n_train = len(spaces[0].train_trials())
    grid = EncodingConfig.alphas if alphas is None else alphas
    return choose_cv_strategy(
        n_train, sum(s.n_components for s in spaces), _folds(groups, cv, random_state),
        len(np.atleast_1d(grid)), n_voxels,
    )  # fmt: skip


def fit_voxel_block(
    spaces: Sequence[ReducedSpace],
    Y_train: np.ndarray,
    Y_test: np.ndarray,
    groups: np.ndarray | None = None,
    alphas: Sequence[float] | None = None,
    cv: int = 5,
    backend: str = "numpy",
    device: str = "cpu",
    random_state: int | None = 0,
    progress: bool = False,
    cv_strategy: str = "auto",
) -> EncodingBlock:
    """Fit one encoding model on some voxels and test it: a piece of an encoding fit.

    Ridge targets are independent (one alpha per voxel, the folds depend on
    ``groups`` only), so fitting the voxels in blocks and concatenating gives
    the one-shot fit; p-values and FDR come later, over all voxels
    (:func:`assemble_encoding_result`).

    Parameters
    ----------
    spaces : sequence of ReducedSpace
        The model's feature spaces, in order: one gives :class:`~brainldm.ridge.RidgeCV`,
        several give :class:`~brainldm.ridge.BandedRidgeCV`.
    Y_train : ndarray of shape (n_train, n_block)
        Training betas of the block's voxels.
    Y_test : ndarray of shape (n_test, n_block)
        Test betas of the block's voxels.
    groups : ndarray of int, shape (n_train,), optional
        ``nsd_id`` of each training trial, for grouped CV folds.
    alphas, cv, backend, device, random_state, progress
        See :class:`FitOptions`.
    cv_strategy : {"auto", "woodbury", "eigh_per_fold"}
        How the ridge solves its CV folds. Give every block of a model
        :func:`model_cv_strategy` of the whole model to get the values of one
        fit over all voxels; ``"auto"`` chooses for this block's voxels.

    Returns
    -------
    block : EncodingBlock
    """
    from brainldm.ridge import BandedRidgeCV, RidgeCV, r2_score

    spaces = tuple(spaces)
    if not spaces:
        raise ValueError("spaces is empty: give at least one ReducedSpace.")
    Y_train = _as_2d("Y_train", Y_train)
    Y_test = _as_2d("Y_test", Y_test)
    train = [s.train_trials() for s in spaces]
    test = [s.test for s in spaces]
    # the spaces come standardised (and PCA scores must keep their variances)
    common = dict(cv=_folds(groups, cv, random_state), backend=backend, device=device,
                  progress=progress, standardize_X=False, cv_strategy=cv_strategy)  # fmt: skip
    grid = EncodingConfig.alphas if alphas is None else alphas
    if len(spaces) == 1:
        model = RidgeCV(alphas=grid, **common).fit(train[0], Y_train)
        pred = model.predict(test[0])
        r2_split = None
    else:
        model = BandedRidgeCV(alphas=grid, **common).fit(train, Y_train)
        pred = model.predict(test)
        r2_split = np.asarray(model.score(test, Y_test, split=True))
    return EncodingBlock(
        r=pearson_r(Y_test, pred),
        r2=np.atleast_1d(np.asarray(r2_score(Y_test, pred), dtype=np.float64)),
        r2_split=r2_split,
        best_alphas=np.asarray(model.best_alphas_),
    )


def assemble_encoding_result(
    blocks: Sequence[EncodingBlock],
    spaces: Sequence[str],
    n_components: Mapping[str, int],
    n_test: int,
    q: float = 0.05,
    name: str | None = None,
) -> EncodingResult:
    """Join the voxel blocks of one model, then test every voxel together.

    p-values and the Benjamini-Hochberg FDR are computed over all voxels at
    once (never per block: BH depends on every p-value of the family).

    Parameters
    ----------
    blocks : sequence of EncodingBlock
        In voxel order; together they cover every voxel once.
    spaces : sequence of str
        The model's feature spaces, in order.
    n_components : mapping of str to int
        Dimensions kept per space.
    n_test : int
        Test images.
    q : float
        FDR level.
    name : str, optional
        Default: the space names joined by "+".

    Returns
    -------
    result : EncodingResult
    """
    blocks = list(blocks)
    if not blocks:
        raise ValueError("blocks is empty: give the model's voxel blocks.")
    spaces = tuple(spaces)
    r = np.concatenate([b.r for b in blocks])
    p = correlation_pvalues(r, n_test)
    split = [b.r2_split for b in blocks]
    if any(s is None for s in split) and not all(s is None for s in split):
        raise ValueError("some blocks have r2_split and others do not: are they of one model?")
    result = EncodingResult(
        name=name or "+".join(spaces),
        spaces=spaces,
        r=r,
        p=p,
        significant=fdr_significant(p, q),
        r2=np.concatenate([b.r2 for b in blocks]),
        r2_split=None if split[0] is None else np.concatenate(split, axis=1),
        best_alphas=np.concatenate([b.best_alphas for b in blocks], axis=-1),
        n_components={s: int(n_components[s]) for s in spaces},
        q=q,
        n_test=int(n_test),
    )
    logger.info(
        "encoding %s: %d/%d voxels significant, median r %.3f",
        result.name, result.significant.sum(), len(r), np.median(r),
    )  # fmt: skip
    return result


def voxel_batches(n_voxels: int, voxel_batch_size: int | None = None) -> list[tuple[int, int]]:
    """Split the voxels (columns) into consecutive blocks.

    Parameters
    ----------
    n_voxels : int
    voxel_batch_size : int, optional
        Voxels per block, the last one may be smaller; None: one block.

    Returns
    -------
    batches : list of (int, int)
        ``(start, stop)`` of each block, in voxel order.

    Examples
    --------
    >>> voxel_batches(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    >>> voxel_batches(5)
    [(0, 5)]
    """
    size = n_voxels if voxel_batch_size is None else check_positive_int(
        "voxel_batch_size", voxel_batch_size
    )
    return [(a, min(a + size, n_voxels)) for a in range(0, n_voxels, max(size, 1))]


def _as_betas(name: str, Y):
    """Betas as float32 2-D arrays; 2-D on-disk betas (``Y[:, a:b]`` reads) stay on disk."""
    if isinstance(Y, np.ndarray) or not hasattr(Y, "shape"):
        return _as_2d(name, Y)
    if len(Y.shape) != 2:
        raise ValueError(f"{name} must be 2-D (n_images, n_voxels), got shape {Y.shape}.")
    return Y


def _as_2d(name: str, Y) -> np.ndarray:
    Y = np.asarray(Y, dtype=np.float32)
    if Y.ndim == 1:  # one voxel
        return Y[:, None]
    if Y.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_images, n_voxels), got shape {Y.shape}.")
    return Y
