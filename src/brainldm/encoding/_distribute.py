"""Encoding fits as work items: feature sets × voxel batches, run by :func:`map_shards`.

A run has two kinds of items. First, one per feature set: PCA of its training
images (:class:`_ReduceTask`), so that a feature set used by several models
(a single, a pair, a layer set) is reduced once. Then, one per (model, voxel
batch): a ridge fit of those voxels (:class:`_BlockTask`). The reduced features
and the betas are not copied into every block item: they travel once as
``map_shards``' ``shared`` value (Ray's object store, read without a copy by the
workers of a node). Betas and features given on disk stay there: a PCA item
reads its feature set by column blocks, a block item reads its voxels only, so
neither this process nor a worker ever holds every voxel's betas. The blocks
of a model are joined in voxel order, and p-values and FDR are computed over
all its voxels, in the calling process.

Ridge targets are independent, and every block of a model solves its CV folds
as the whole model would (:func:`model_cv_strategy`, computed once per model),
so the results do not depend on the batches, the executor or the number of
workers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from brainldm.distributed import Execution, as_execution, executor_session, map_shards
from brainldm.encoding._models import (
    EncodingBlock,
    EncodingResult,
    FitOptions,
    ReducedSpace,
    _as_2d,
    _as_betas,
    _as_matrix,
    _distinct_rows,
    assemble_encoding_result,
    fit_voxel_block,
    model_cv_strategy,
    reduce_space,
    voxel_batches,
)

logger = logging.getLogger(__name__)

#: Memory for one voxel block's betas and ridge weights when ``voxel_batch_size`` is None.
VOXEL_BLOCK_BUDGET_BYTES = 4 * 2**30


def default_voxel_batch_size(
    n_train: int, n_test: int, n_features: int, budget_bytes: int = VOXEL_BLOCK_BUDGET_BYTES
) -> int:
    """Voxels per block whose float32 betas and ridge weights fit in ``budget_bytes``.

    A block holds ``n_train + n_test`` betas and ``n_features`` weights per
    voxel; every block repeats the decomposition of the features, so the
    blocks are as large as the budget allows. Whole-brain betas (25,000
    trials × 250,000 voxels: 25 GB) are then never read at once.

    Parameters
    ----------
    n_train, n_test : int
        Training trials and test images.
    n_features : int
        Columns of the model's design (the sum over its spaces after PCA).
    budget_bytes : int
        Default :data:`VOXEL_BLOCK_BUDGET_BYTES` (4 GiB).

    Returns
    -------
    voxel_batch_size : int
        At least 1.

    Examples
    --------
    >>> default_voxel_batch_size(24_980, 982, 12_800)
    27700
    """
    per_voxel = 4 * (int(n_train) + int(n_test) + int(n_features))
    return max(1, int(budget_bytes) // per_voxel)


@dataclass(frozen=True)
class _ReduceTask:
    """PCA of one feature space; calling it gives the :class:`ReducedSpace`.

    The rows may be on-disk views (feature stores): a task then holds their
    paths and ids only, and the worker reads them in column blocks.
    """

    name: str
    train_rows: object  # (n_rows, n_features): distinct images, or trials
    test: object  # (n_test, n_features)
    train_index: np.ndarray | None  # (n_train,), row of each trial
    n_components: int | None
    progress: bool = False

    @classmethod
    def of(cls, name: str, X_train, X_test, groups: np.ndarray | None,
           options: FitOptions) -> _ReduceTask:  # fmt: skip
        """Make the item of one space: its distinct training images and its test images."""
        rows, index = _as_matrix(X_train), None
        if groups is not None:
            rows, index = _distinct_rows(rows, np.asarray(groups))
        return cls(name, rows, _as_matrix(X_test), index, options.n_components,
                   options.progress)  # fmt: skip

    def __call__(self) -> ReducedSpace:
        space = reduce_space(self.name, self.train_rows, self.test, None, self.n_components,
                             self.progress)  # fmt: skip
        return dataclasses.replace(space, train_index=self.train_index)

    def __str__(self) -> str:
        return f"PCA of {self.name!r} ({self.train_rows.shape[0]} training rows)"


def _run_reduce(task: _ReduceTask) -> ReducedSpace:
    return task()


@dataclass(frozen=True)
class _Data:
    """What every block item reads: reduced spaces and betas (``map_shards``' shared value)."""

    spaces: dict  # str -> ReducedSpace
    Y_train: object  # (n_train, n_voxels): float32 array, or on disk (read by block)
    Y_test: object  # (n_test, n_voxels)
    groups: np.ndarray | None  # (n_train,)


@dataclass(frozen=True)
class _BlockTask:
    """Fit model ``model`` (on ``spaces``) for voxels ``start:stop``."""

    model: str
    spaces: tuple[str, ...]
    start: int
    stop: int
    cv_strategy: str  # the whole model's (model_cv_strategy)
    options: FitOptions

    def __str__(self) -> str:
        return f"encoding model {self.model!r}, voxels {self.start}..{self.stop - 1}"


def _run_block(task: _BlockTask, data: _Data) -> EncodingBlock:
    o, cols = task.options, slice(task.start, task.stop)
    # Only this block of voxels is read (on-disk betas stay on disk).
    Y_train = _as_2d("Y_train", data.Y_train[:, cols])
    Y_test = _as_2d("Y_test", data.Y_test[:, cols])
    return fit_voxel_block(
        [data.spaces[s] for s in task.spaces], Y_train, Y_test,
        data.groups, alphas=o.alphas, cv=o.cv, backend=o.backend, device=o.device,
        random_state=o.random_state, progress=o.progress, cv_strategy=task.cv_strategy,
    )  # fmt: skip


def _check_features(
    models: Mapping[str, tuple[str, ...]], train: Mapping, test: Mapping, n_train: int, n_test: int
) -> list[str]:
    """Return the distinct feature sets of ``models`` in order of first use; check their rows."""
    names = list(dict.fromkeys(s for spaces in models.values() for s in spaces))
    for s in names:
        n_tr, n_te = np.shape(train[s])[0], np.shape(test[s])[0]
        if n_tr != n_train or n_te != n_test:
            raise ValueError(
                f"feature space {s!r}: {n_tr} train / {n_te} test rows, "
                f"but Y has {n_train} / {n_test}."
            )
    return names


def fit_models(
    models: Mapping[str, tuple[str, ...]],
    train: Mapping[str, np.ndarray],
    Y_train: np.ndarray,
    test: Mapping[str, np.ndarray],
    Y_test: np.ndarray,
    groups: np.ndarray | None = None,
    options: FitOptions | None = None,
    *,
    execution: Execution | str | None = None,
) -> dict[str, EncodingResult]:
    """Fit several encoding models, by voxel batches, in this process or on Ray.

    Parameters
    ----------
    models : mapping of str to tuple of str
        Model name -> its feature spaces (keys of ``train``/``test``), in order.
    train : mapping of str to array-like of shape (n_train, ...)
        Feature sets, one row per training trial: arrays, or 2-D on-disk views
        (:meth:`brainldm.features.FeatureStore.matrix`) read by column blocks
        for PCA.
    Y_train : array-like of shape (n_train, n_voxels)
        Training betas: an array, or on-disk betas (``SubjectSplit.load(...,
        lazy=True)``) of which each work item reads its block of voxels only.
    test : mapping of str to array-like of shape (n_test, ...)
        The same feature sets for the test images.
    Y_test : array-like of shape (n_test, n_voxels)
        Test betas.
    groups : ndarray of int, shape (n_train,), optional
        ``nsd_id`` of each training trial.
    options : FitOptions, optional
        Model options (default ``FitOptions()``).
    execution : Execution or {"local", "ray"}, optional
        Where the fits run, and ``voxel_batch_size`` (see
        :func:`~brainldm.encoding.run_encoding_analyses`). Default: this
        process, blocks of :func:`default_voxel_batch_size` voxels (all
        voxels at once when they fit in its budget).

    Returns
    -------
    results : dict of str to EncodingResult
        In the order of ``models``.
    """
    options = FitOptions() if options is None else options
    execution = as_execution(execution)
    Y_train, Y_test = _as_betas("Y_train", Y_train), _as_betas("Y_test", Y_test)
    n_voxels = Y_train.shape[1]
    if Y_test.shape[1] != n_voxels or n_voxels == 0:
        raise ValueError(
            f"Y_train and Y_test must have the same voxels (columns), at least one; got "
            f"{n_voxels} and {Y_test.shape[1]}."
        )
    groups = None if groups is None else np.asarray(groups)
    n_train, n_test = Y_train.shape[0], Y_test.shape[0]
    if groups is not None and len(groups) != n_train:
        raise ValueError(f"groups has {len(groups)} entries but Y_train has {n_train} rows.")
    names = _check_features(models, train, test, n_train, n_test)
    size = execution.voxel_batch_size
    if size is None:  # the widest model's design, after PCA
        width = {s: int(np.prod(np.shape(train[s])[1:])) for s in names}
        cap = options.n_components or max(width.values())
        widest = max(sum(min(width[s], cap) for s in spaces) for spaces in models.values())
        size = default_voxel_batch_size(n_train, n_test, widest, VOXEL_BLOCK_BUDGET_BYTES)
    run = _Run(models, train, test, _Data({}, Y_train, Y_test, groups), options,
               voxel_batches(n_voxels, size), names)  # fmt: skip
    if execution.executor == "local":
        return _fit_local(run)
    return _fit_ray(run, execution)


@dataclass(frozen=True)
class _Run:
    """One call of :func:`fit_models`, checked."""

    models: Mapping[str, tuple[str, ...]]
    train: Mapping[str, np.ndarray]
    test: Mapping[str, np.ndarray]
    data: _Data  # betas and groups; no spaces yet
    options: FitOptions
    batches: list[tuple[int, int]]
    names: list[str]  # distinct feature sets, in order of first use

    def reduce_task(self, space: str) -> _ReduceTask:
        return _ReduceTask.of(space, self.train[space], self.test[space], self.data.groups,
                              self.options)  # fmt: skip

    def tasks(self, name: str, reduced: Mapping[str, ReducedSpace],
              options: FitOptions) -> list[_BlockTask]:  # fmt: skip
        """Return the block items of model ``name``, with the whole model's CV strategy."""
        spaces = self.models[name]
        o = self.options
        strategy = model_cv_strategy([reduced[s] for s in spaces], self.data.Y_train.shape[1],
                                     self.data.groups, o.alphas, o.cv, o.random_state)  # fmt: skip
        return [_BlockTask(name, spaces, a, b, strategy, options) for a, b in self.batches]

    def assemble(self, name: str, blocks: list, reduced: Mapping) -> EncodingResult:
        spaces = self.models[name]
        dims = {s: reduced[s].n_components for s in spaces}
        return assemble_encoding_result(blocks, spaces, dims, self.data.Y_test.shape[0],
                                        self.options.q, name=name)  # fmt: skip


def _fit_local(run: _Run) -> dict[str, EncodingResult]:
    """Model after model; a space's PCA is kept while later models still need it."""
    uses = Counter(s for spaces in run.models.values() for s in spaces)
    reduced: dict[str, ReducedSpace] = {}
    results = {}
    for name, spaces in run.models.items():
        for s in spaces:
            if s not in reduced:
                reduced[s] = _run_reduce(run.reduce_task(s))
        data = dataclasses.replace(run.data, spaces={s: reduced[s] for s in spaces})
        blocks = [_run_block(t, data) for t in run.tasks(name, reduced, run.options)]
        results[name] = run.assemble(name, blocks, reduced)
        for s in spaces:
            uses[s] -= 1
            if uses[s] == 0:
                del reduced[s]
    return results


def _fit_ray(run: _Run, execution: Execution) -> dict[str, EncodingResult]:
    """PCA per feature set, then every (model, voxel batch) in one ``map_shards`` call."""
    progress = run.options.progress
    # PCA runs on CPUs; the ridge's device decides the GPUs of the fits by default.
    pca = dataclasses.replace(execution, num_gpus_per_worker=0, device="cpu")
    fits = dataclasses.replace(execution, device=run.options.device)
    quiet = dataclasses.replace(run.options, progress=False)  # no ridge bars on workers
    with executor_session(execution):
        items = [run.reduce_task(s) for s in run.names]
        reduced = dict(zip(run.names, map_shards(_run_reduce, items, execution=pca,
                                                 progress=progress), strict=True))  # fmt: skip
        del items
        tasks = [t for name in run.models for t in run.tasks(name, reduced, quiet)]
        logger.info("%d models x %d voxel batches on Ray", len(run.models), len(run.batches))
        data = dataclasses.replace(run.data, spaces=reduced)
        blocks = map_shards(_run_block, tasks, shared=data, execution=fits, progress=progress)
    results, k = {}, len(run.batches)
    for m, name in enumerate(run.models):
        results[name] = run.assemble(name, blocks[m * k : (m + 1) * k], reduced)
    return results
