"""Voxel-wise encoding models: LDM features → brain (Takagi & Nishimoto 2023, §3.5).

For a feature set (one space, e.g. z, or several, e.g. z + zc), each space is
reduced to at most 6,400 dimensions by PCA fitted on the training images only,
a ridge model (one alpha per voxel, and per space for joint models, chosen by
grouped K-fold CV on the training trials) predicts every voxel, and the
prediction accuracy on the held-out shared images is tested voxel by voxel.

A fit is three steps, each usable alone: reduce each space once
(:func:`reduce_space`), fit and test blocks of voxels (:func:`fit_voxel_block`;
ridge targets are independent, so blocks give the one-shot fit), then join the
blocks and compute p-values and FDR over all voxels
(:func:`assemble_encoding_result`). :func:`run_encoding_analyses` runs them for
every model of the analysis, in this process or as (model, voxel batch) work
items on Ray.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainldm.encoding._stats import (
    best_layer,
    correlation_pvalues,
    fdr_significant,
    pearson_r,
    unique_variance,
)

logger = logging.getLogger(__name__)

#: PCA size of each feature space in the paper.
PAPER_N_COMPONENTS = 6400


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
        from brainldm._utils import atomic_path, write_json_atomic

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
            name=meta.pop("name"),
            spaces=tuple(meta.pop("spaces")),
            r=arrays["r"],
            p=arrays["p"],
            significant=arrays["significant"],
            r2=arrays["r2"],
            r2_split=arrays.get("r2_split"),
            best_alphas=arrays["best_alphas"],
            n_components=meta.pop("n_components"),
            q=meta.pop("q"),
            n_test=meta.pop("n_test"),
            meta=meta,
        )


def reduce_features(
    X_train: np.ndarray,
    X_test: np.ndarray,
    n_components: int | None = PAPER_N_COMPONENTS,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Standardise each feature on the training rows, then PCA fitted on them; apply to both.

    The component scores keep their variances: the ridge that follows must not
    rescale them, or it would give the weakest components as much weight as the
    strongest (with k near the number of images, an uninformative whitened space).

    Parameters
    ----------
    X_train : ndarray of shape (n_train, ...)
    X_test : ndarray of shape (n_test, ...)
        Flattened to 2-D.
    n_components : int or None
        Dimensions kept (6,400 in the paper); None, or at least the number of
        features, keeps the standardised features.
    random_state : int or None
        Seed of the randomised SVD.

    Returns
    -------
    Z_train : ndarray of shape (n_train, k)
    Z_test : ndarray of shape (n_test, k)
    """
    X_train = np.asarray(X_train, dtype=np.float32).reshape(len(X_train), -1)
    X_test = np.asarray(X_test, dtype=np.float32).reshape(len(X_test), -1)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std[std == 0] = 1.0  # constant features stay 0
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    if n_components is None or n_components >= X_train.shape[1]:
        return X_train, X_test
    from sklearn.decomposition import PCA

    k = min(n_components, X_train.shape[0])
    pca = PCA(n_components=k, svd_solver="auto", random_state=random_state).fit(X_train)
    return pca.transform(X_train).astype(np.float32), pca.transform(X_test).astype(np.float32)


def _unique_rows(X: np.ndarray, nsd_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of X for each distinct nsd_id (features repeat with image repeats)."""
    unique, first, inverse = np.unique(nsd_ids, return_index=True, return_inverse=True)
    return X[first], inverse


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
        """The reduced features of every training trial, shape (n_train, k)."""
        return self.train if self.train_index is None else self.train[self.train_index]


def reduce_space(
    name: str,
    X_train: np.ndarray,
    X_test: np.ndarray,
    groups: np.ndarray | None = None,
    n_components: int | None = PAPER_N_COMPONENTS,
    random_state: int | None = 0,
) -> ReducedSpace:
    """Reduce one feature space for the encoding models, as :func:`fit_encoding_model` does.

    Parameters
    ----------
    name : str
    X_train : ndarray of shape (n_train, ...)
        One row per training trial; flattened to 2-D.
    X_test : ndarray of shape (n_test, ...)
    groups : ndarray of int, shape (n_train,), optional
        ``nsd_id`` of each training trial: PCA is fitted once per distinct image.
    n_components : int or None
        See :func:`reduce_features`.
    random_state : int or None

    Returns
    -------
    space : ReducedSpace
    """
    from brainldm.encoding._distribute import reduce_task

    return reduce_task(name, X_train, X_test, groups, n_components, random_state)()


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


def _choose_cv_strategy_as_for(model, n_targets: int | None):
    """Make ``model`` pick its CV strategy as a fit on ``n_targets`` targets would.

    The ridge chooses how to solve its folds (``cv_strategy="auto"``) from the
    problem's size, the number of targets included. Both ways are exact, but
    their CV scores differ by rounding, which could tip a near-tie between two
    alphas; choosing as for the whole model's voxels makes every voxel block
    score the alphas as the one-shot fit does (the weights, from one
    decomposition, do not depend on it).
    """
    if n_targets is None:
        return model
    choose = model._strategy  # brainldm.ridge's own hook: fails loudly if it is renamed

    def strategy(dec, folds, n_alphas, _n_block_targets):
        return choose(dec, folds, n_alphas, n_targets)

    model._strategy = strategy
    return model


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
    n_voxels: int | None = None,
) -> EncodingBlock:
    """Fit one encoding model on some voxels and test it: a piece of :func:`fit_encoding_model`.

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
        See :func:`fit_encoding_model`.
    n_voxels : int, optional
        Voxels of the whole model (every block). The ridge then chooses how to
        solve its folds as one fit over all voxels would, so that the block's
        values are those of that fit. Default: this block's voxels.

    Returns
    -------
    block : EncodingBlock
    """
    from brainldm.ridge import DEFAULT_ALPHAS, BandedRidgeCV, RidgeCV, grouped_folds, r2_score

    spaces = tuple(spaces)
    if not spaces:
        raise ValueError("spaces is empty: give at least one ReducedSpace.")
    Y_train = _as_2d("Y_train", Y_train)
    Y_test = _as_2d("Y_test", Y_test)
    train = [s.train_trials() for s in spaces]
    test = [s.test for s in spaces]
    folds = cv if groups is None else grouped_folds(groups, n_splits=cv, random_state=random_state)
    # the spaces come standardised (and PCA scores must keep their variances)
    common = dict(cv=folds, backend=backend, device=device, progress=progress,
                  standardize_X=False)  # fmt: skip
    grid = DEFAULT_ALPHAS if alphas is None else alphas
    if len(spaces) == 1:
        model = _choose_cv_strategy_as_for(RidgeCV(alphas=grid, **common), n_voxels)
        model.fit(train[0], Y_train)
        pred = model.predict(test[0])
        r2_split = None
    else:
        model = _choose_cv_strategy_as_for(BandedRidgeCV(alphas=grid, **common), n_voxels)
        model.fit(train, Y_train)
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
    from brainldm._utils import check_positive_int

    size = n_voxels if voxel_batch_size is None else check_positive_int(
        "voxel_batch_size", voxel_batch_size
    )
    return [(a, min(a + size, n_voxels)) for a in range(0, n_voxels, max(size, 1))]


def _as_2d(name: str, Y) -> np.ndarray:
    Y = np.asarray(Y, dtype=np.float32)
    if Y.ndim == 1:  # one voxel
        return Y[:, None]
    if Y.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_images, n_voxels), got shape {Y.shape}.")
    return Y


def fit_encoding_model(
    X_train: Mapping[str, np.ndarray],
    Y_train: np.ndarray,
    X_test: Mapping[str, np.ndarray],
    Y_test: np.ndarray,
    groups: np.ndarray | None = None,
    n_components: int | None = PAPER_N_COMPONENTS,
    alphas: Sequence[float] | None = None,
    cv: int = 5,
    q: float = 0.05,
    backend: str = "numpy",
    device: str = "cpu",
    random_state: int | None = 0,
    name: str | None = None,
    progress: bool = False,
    *,
    voxel_batch_size: int | None = None,
    executor: str = "local",
    address: str | None = None,
    n_workers: int | None = None,
    num_cpus_per_worker: float = 1,
    num_gpus_per_worker: float | None = None,
    max_retries: int = 3,
) -> EncodingResult:
    """Fit one voxel-wise encoding model and test it on held-out images.

    Each space is reduced once (:func:`reduce_space`), the voxels are fitted in
    blocks of ``voxel_batch_size`` (:func:`fit_voxel_block`), and the blocks are
    joined and tested over all voxels (:func:`assemble_encoding_result`). The
    result does not depend on ``voxel_batch_size``, the executor or the number
    of workers.

    Parameters
    ----------
    X_train : mapping of str to ndarray of shape (n_train, ...)
        Feature spaces (e.g. ``{"z": z_train}``, or ``{"z": ..., "zc": ...}`` for a
        joint model), one row per training trial. X is the encoder's input.
    Y_train : ndarray of shape (n_train, n_voxels)
        Training betas (the encoder's targets), single trials.
    X_test : mapping of str to ndarray of shape (n_test, ...)
        Same spaces for the test images.
    Y_test : ndarray of shape (n_test, n_voxels)
        Test betas, averaged over repeats.
    groups : ndarray of int, shape (n_train,), optional
        ``nsd_id`` of each training trial: CV folds keep an image's repeats
        together, and PCA is fitted once per distinct image.
    n_components : int or None
        PCA size per space (6,400 in the paper); None skips PCA.
    alphas : sequence of float, optional
        Ridge grid (default :data:`brainldm.ridge.DEFAULT_ALPHAS`).
    cv : int
        Folds.
    q : float
        FDR level.
    backend, device
        Ridge backend (``"numpy"`` or ``"torch"``) and device.
    random_state : int or None
    name : str, optional
        Default: the space names joined by "+".
    progress : bool
    voxel_batch_size : int, optional
        Voxels per ridge fit (and per work item); None: all voxels at once.
        Each block repeats the decomposition of the features, so blocks of
        thousands of voxels, not tens, keep that cost small.
    executor : {"local", "ray"}
        ``"local"`` fits the blocks one after the other in this process and
        never imports Ray; ``"ray"`` runs PCA and the blocks on Ray workers
        (see :func:`~brainldm.distributed.map_shards`, as for ``address``,
        ``n_workers``, ``num_cpus_per_worker`` and ``max_retries``).
    address : str, optional
    n_workers : int, optional
    num_cpus_per_worker : float
    num_gpus_per_worker : float, optional
        GPUs per Ray worker for the ridge fits; default 1 with ``executor="ray"``
        and a CUDA ``device``, else 0. PCA runs on CPUs.
    max_retries : int

    Returns
    -------
    result : EncodingResult
    """
    from brainldm.encoding._distribute import FitOptions, fit_models

    spaces = tuple(X_train)
    if not spaces or set(spaces) != set(X_test):
        raise ValueError(
            f"X_train and X_test must name the same feature spaces, got {list(X_train)} "
            f"and {list(X_test)}."
        )
    options = FitOptions(n_components=n_components, alphas=alphas, cv=cv, q=q, backend=backend,
                         device=device, random_state=random_state, progress=progress)  # fmt: skip
    models = {name or "+".join(spaces): spaces}
    (result,) = fit_models(
        models, X_train, X_test, Y_train, Y_test, groups, options,
        voxel_batch_size=voxel_batch_size, executor=executor, address=address,
        n_workers=n_workers, num_cpus_per_worker=num_cpus_per_worker,
        num_gpus_per_worker=num_gpus_per_worker, max_retries=max_retries,
    ).values()  # fmt: skip
    return result


@dataclass
class EncodingAnalyses:
    """Every model of the paper's encoding analysis, and the maps derived from them.

    Attributes
    ----------
    results : dict of str to EncodingResult
        One per fitted model (single spaces and joint pairs).
    unique : dict of str to ndarray of shape (n_voxels,)
        ``"{a}|{a}+{b}"``: unique variance of space a in the joint model a + b.
    best_layers : dict of str to ndarray of int, shape (n_voxels,)
        Per layer set (e.g. a denoising step): index into its layer list, -1 if
        no layer is significant.
    layer_names : dict of str to list of str
    """

    results: dict
    unique: dict
    best_layers: dict
    layer_names: dict


def run_encoding_analyses(
    train: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    Y_train: np.ndarray,
    Y_test: np.ndarray,
    singles: Sequence[str] = (),
    pairs: Sequence[tuple[str, str]] = (),
    layer_sets: Mapping[str, Sequence[str]] | None = None,
    groups: np.ndarray | None = None,
    *,
    voxel_batch_size: int | None = None,
    executor: str = "local",
    address: str | None = None,
    n_workers: int | None = None,
    num_cpus_per_worker: float = 1,
    num_gpus_per_worker: float | None = None,
    max_retries: int = 3,
    **kwargs,
) -> EncodingAnalyses:
    """The paper's encoding analyses (§3.5; Figures 6-9), in this process or on Ray.

    Every feature set is reduced by PCA once, however many models use it. With
    ``executor="ray"``, PCA runs on the workers (one item per feature set), then
    every (model, voxel batch) pair of the whole analysis is one work item of a
    single :func:`~brainldm.distributed.map_shards` call, so the workers stay
    busy. The results do not depend on the executor, ``voxel_batch_size`` or
    the number of workers; p-values and FDR are computed over all voxels.

    Parameters
    ----------
    train, test : mapping of str to ndarray
        Every feature set by name (``"z"``, ``"c"``, ``"zc_s0.50"``,
        ``"unet_mid_block_f0.50"``, ...), rows aligned with ``Y_train``/``Y_test``.
    Y_train : ndarray of shape (n_train, n_voxels)
    Y_test : ndarray of shape (n_test, n_voxels)
    singles : sequence of str
        (i) One model per feature set (z, c, zc, ...).
    pairs : sequence of (str, str)
        (ii)/(iii) Joint models a + b (z with zc at each noise level or step);
        the unique variance of each space is R²(a + b) − R²(the other alone).
    layer_sets : mapping of str to sequence of str, optional
        (iv) For each step, the U-Net layers' feature sets; one model per layer
        and the best layer per voxel among significant models.
    groups : ndarray of int, shape (n_train,), optional
        nsd_id of each training trial.
    voxel_batch_size : int, optional
        Voxels per ridge fit and work item; None: all voxels at once.
    executor : {"local", "ray"}
        See :func:`fit_encoding_model`, as for ``address``, ``n_workers``,
        ``num_cpus_per_worker``, ``num_gpus_per_worker`` and ``max_retries``.
    address : str, optional
    n_workers : int, optional
    num_cpus_per_worker : float
    num_gpus_per_worker : float, optional
    max_retries : int
    **kwargs
        Model options of :func:`fit_encoding_model` (n_components, alphas, cv,
        q, backend, device, random_state, progress).

    Returns
    -------
    analyses : EncodingAnalyses
    """
    from brainldm.encoding._distribute import FitOptions, fit_models

    options = FitOptions(**kwargs)
    layer_sets = dict(layer_sets or {})
    needed = set(singles) | {n for pair in pairs for n in pair}
    needed |= {n for names in layer_sets.values() for n in names}
    missing = sorted(n for n in needed if n not in train or n not in test)
    if missing:
        raise ValueError(f"feature sets {missing} are not in train/test; have {sorted(train)}.")
    models: dict[str, tuple[str, ...]] = {}

    def add(name: str, spaces: tuple[str, ...]) -> None:
        if models.setdefault(name, spaces) != spaces:
            raise ValueError(
                f"model name {name!r} stands for both {models[name]} and {spaces}; rename "
                "the feature set."
            )

    for name in singles:
        add(name, (name,))
    for a, b in pairs:
        add(f"{a}+{b}", (a, b))
        add(b, (b,))
        add(a, (a,))
    for names in layer_sets.values():
        for name in names:
            add(name, (name,))
    results = fit_models(
        models, train, test, Y_train, Y_test, groups, options,
        voxel_batch_size=voxel_batch_size, executor=executor, address=address,
        n_workers=n_workers, num_cpus_per_worker=num_cpus_per_worker,
        num_gpus_per_worker=num_gpus_per_worker, max_retries=max_retries,
    )  # fmt: skip
    unique = {}
    for a, b in pairs:
        joint = results[f"{a}+{b}"]
        unique[f"{a}|{a}+{b}"] = unique_variance(joint.r2, results[b].r2)
        unique[f"{b}|{a}+{b}"] = unique_variance(joint.r2, results[a].r2)
    best_layers = {}
    for label, names in layer_sets.items():
        fitted = [results[n] for n in names]
        best_layers[label] = best_layer(
            np.stack([f.r for f in fitted]), np.stack([f.significant for f in fitted])
        )
    return EncodingAnalyses(
        results=results,
        unique=unique,
        best_layers=best_layers,
        layer_names={k: list(v) for k, v in layer_sets.items()},
    )
