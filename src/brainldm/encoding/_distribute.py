"""Encoding fits as work items: feature sets × voxel batches, run by :func:`map_shards`.

A run has two kinds of items. First, one per feature set: PCA of its training
images (:class:`_ReduceTask`), so that a feature set used by several models
(a single, a pair, a layer set) is reduced once. Then, one per (model, voxel
batch): a ridge fit of those voxels (:class:`_BlockTask`). The reduced features
and the betas are not copied into every block item: they travel once as
``map_shards``' ``shared`` value (Ray's object store, read without a copy by the
workers of a node). The blocks of a model are joined in voxel order, and
p-values and FDR are computed over all its voxels, in the calling process.

Ridge targets are independent, and every block chooses its CV strategy as the
whole model would (``n_voxels``), so the results do not depend on the batches,
the executor or the number of workers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from brainldm.encoding._models import (
    PAPER_N_COMPONENTS,
    EncodingBlock,
    EncodingResult,
    ReducedSpace,
    _as_2d,
    _unique_rows,
    assemble_encoding_result,
    fit_voxel_block,
    reduce_features,
    voxel_batches,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitOptions:
    """Model options shared by every fit of a run (see :func:`fit_encoding_model`)."""

    n_components: int | None = PAPER_N_COMPONENTS
    alphas: Sequence[float] | None = None
    cv: int = 5
    q: float = 0.05
    backend: str = "numpy"
    device: str = "cpu"
    random_state: int | None = 0
    progress: bool = False


@dataclass(frozen=True)
class _ReduceTask:
    """PCA of one feature space; calling it gives the :class:`ReducedSpace`."""

    name: str
    train_rows: np.ndarray  # (n_rows, n_features): distinct images, or trials
    test: np.ndarray  # (n_test, ...)
    train_index: np.ndarray | None  # (n_train,), row of each trial
    n_components: int | None
    random_state: int | None

    def __call__(self) -> ReducedSpace:
        Z_train, Z_test = reduce_features(
            self.train_rows, self.test, self.n_components, self.random_state
        )
        return ReducedSpace(self.name, Z_train, Z_test, self.train_index)

    def __str__(self) -> str:
        return f"PCA of {self.name!r} ({self.train_rows.shape[0]} training rows)"


def reduce_task(
    name: str,
    X_train: np.ndarray,
    X_test: np.ndarray,
    groups: np.ndarray | None,
    n_components: int | None,
    random_state: int | None,
) -> _ReduceTask:
    """The PCA work item of one space: its distinct training images and its test images."""
    X_train = np.asarray(X_train)
    rows = X_train.reshape(len(X_train), -1)
    index = None
    if groups is not None:  # PCA on each distinct training image once
        rows, index = _unique_rows(rows, np.asarray(groups))
    return _ReduceTask(name, rows, np.asarray(X_test), index, n_components, random_state)


def _run_reduce(task: _ReduceTask) -> ReducedSpace:
    return task()


@dataclass(frozen=True)
class _Data:
    """What every block item reads: reduced spaces and betas (``map_shards``' shared value)."""

    spaces: dict  # str -> ReducedSpace
    Y_train: np.ndarray  # (n_train, n_voxels), float32
    Y_test: np.ndarray  # (n_test, n_voxels), float32
    groups: np.ndarray | None  # (n_train,)


@dataclass(frozen=True)
class _BlockTask:
    """Fit model ``model`` (on ``spaces``) for voxels ``start:stop``."""

    model: str
    spaces: tuple[str, ...]
    start: int
    stop: int
    n_voxels: int
    options: FitOptions

    def __str__(self) -> str:
        return f"encoding model {self.model!r}, voxels {self.start}..{self.stop - 1}"


def _run_block(task: _BlockTask, data: _Data) -> EncodingBlock:
    o, cols = task.options, slice(task.start, task.stop)
    return fit_voxel_block(
        [data.spaces[s] for s in task.spaces], data.Y_train[:, cols], data.Y_test[:, cols],
        data.groups, alphas=o.alphas, cv=o.cv, backend=o.backend, device=o.device,
        random_state=o.random_state, progress=o.progress, n_voxels=task.n_voxels,
    )  # fmt: skip


def _check_features(
    models: Mapping[str, tuple[str, ...]], train: Mapping, test: Mapping, n_train: int, n_test: int
) -> list[str]:
    """The distinct feature sets of ``models`` in order of first use; check their rows."""
    names = list(dict.fromkeys(s for spaces in models.values() for s in spaces))
    for s in names:
        if len(train[s]) != n_train or len(test[s]) != n_test:
            raise ValueError(
                f"feature space {s!r}: {len(train[s])} train / {len(test[s])} test rows, "
                f"but Y has {n_train} / {n_test}."
            )
    return names


def fit_models(
    models: Mapping[str, tuple[str, ...]],
    train: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    Y_train: np.ndarray,
    Y_test: np.ndarray,
    groups: np.ndarray | None,
    options: FitOptions,
    voxel_batch_size: int | None = None,
    executor: str = "local",
    address: str | None = None,
    n_workers: int | None = None,
    num_cpus_per_worker: float = 1,
    num_gpus_per_worker: float | None = None,
    max_retries: int = 3,
) -> dict[str, EncodingResult]:
    """Fit several encoding models, by voxel batches, in this process or on Ray.

    Parameters
    ----------
    models : mapping of str to tuple of str
        Model name -> its feature spaces (keys of ``train``/``test``), in order.
    train, test : mapping of str to ndarray of shape (n_train, ...) / (n_test, ...)
    Y_train : ndarray of shape (n_train, n_voxels)
    Y_test : ndarray of shape (n_test, n_voxels)
    groups : ndarray of int, shape (n_train,), optional
    options : FitOptions
    voxel_batch_size, executor, address, n_workers, num_cpus_per_worker,
    num_gpus_per_worker, max_retries
        See :func:`~brainldm.encoding.run_encoding_analyses`.

    Returns
    -------
    results : dict of str to EncodingResult
        In the order of ``models``.
    """
    from brainldm._utils import check_option
    from brainldm.distributed import EXECUTORS

    check_option("executor", executor, EXECUTORS)
    if not 0 < options.q < 1:  # before the fits, not after
        raise ValueError(f"q must be in (0, 1), got {options.q!r}.")
    Y_train, Y_test = _as_2d("Y_train", Y_train), _as_2d("Y_test", Y_test)
    n_voxels = Y_train.shape[1]
    if Y_test.shape[1] != n_voxels or n_voxels == 0:
        raise ValueError(
            f"Y_train and Y_test must have the same voxels (columns), at least one; got "
            f"{n_voxels} and {Y_test.shape[1]}."
        )
    groups = None if groups is None else np.asarray(groups)
    if groups is not None and len(groups) != len(Y_train):
        raise ValueError(f"groups has {len(groups)} entries but Y_train has {len(Y_train)} rows.")
    names = _check_features(models, train, test, len(Y_train), len(Y_test))
    batches = voxel_batches(n_voxels, voxel_batch_size)
    run = dict(
        models=models, train=train, test=test, Y_train=Y_train, Y_test=Y_test, groups=groups,
        options=options, batches=batches, names=names,
    )  # fmt: skip
    if executor == "local":
        if n_workers not in (None, 1):
            raise ValueError(
                f"executor='local' runs one worker, got n_workers={n_workers!r}; "
                "use executor='ray' for more."
            )
        return _fit_local(**run)
    return _fit_ray(**run, address=address, n_workers=n_workers,
                    num_cpus_per_worker=num_cpus_per_worker,
                    num_gpus_per_worker=num_gpus_per_worker, max_retries=max_retries)  # fmt: skip


def _tasks(name: str, spaces: tuple, batches: list, n_voxels: int, options: FitOptions) -> list:
    return [_BlockTask(name, spaces, a, b, n_voxels, options) for a, b in batches]


def _assemble(name: str, spaces: tuple, blocks: list, reduced: Mapping, n_test: int, q: float):
    dims = {s: reduced[s].n_components for s in spaces}
    return assemble_encoding_result(blocks, spaces, dims, n_test, q, name=name)


def _fit_local(models, train, test, Y_train, Y_test, groups, options, batches, names):
    """Model after model; a space's PCA is kept while later models still need it."""
    n_voxels = Y_train.shape[1]
    uses = Counter(s for spaces in models.values() for s in spaces)
    reduced: dict[str, ReducedSpace] = {}
    results = {}
    for name, spaces in models.items():
        for s in spaces:
            if s not in reduced:
                reduced[s] = _run_reduce(
                    reduce_task(s, train[s], test[s], groups, options.n_components,
                                options.random_state)
                )  # fmt: skip
        data = _Data({s: reduced[s] for s in spaces}, Y_train, Y_test, groups)
        blocks = [_run_block(t, data) for t in _tasks(name, spaces, batches, n_voxels, options)]
        results[name] = _assemble(name, spaces, blocks, reduced, len(Y_test), options.q)
        for s in spaces:
            uses[s] -= 1
            if uses[s] == 0:
                del reduced[s]
    return results


def _fit_ray(models, train, test, Y_train, Y_test, groups, options, batches, names, address,
             n_workers, num_cpus_per_worker, num_gpus_per_worker, max_retries):  # fmt: skip
    """PCA per feature set, then every (model, voxel batch) in one ``map_shards`` call."""
    from brainldm.distributed import executor_session, map_shards
    from brainldm.distributed._runs import _gpus_per_worker

    num_gpus = _gpus_per_worker("ray", options.device, num_gpus_per_worker)
    common: dict[str, Any] = dict(executor="ray", n_workers=n_workers,
                                  num_cpus_per_worker=num_cpus_per_worker,
                                  max_retries=max_retries, progress=options.progress)  # fmt: skip
    n_voxels = Y_train.shape[1]
    quiet = dataclasses.replace(options, progress=False)  # no ridge progress bars on workers
    tasks = [t for name, spaces in models.items()
             for t in _tasks(name, spaces, batches, n_voxels, quiet)]  # fmt: skip
    with executor_session("ray", address):
        pca = [reduce_task(s, train[s], test[s], groups, options.n_components,
                           options.random_state) for s in names]  # fmt: skip
        reduced = dict(zip(names, map_shards(_run_reduce, pca, num_gpus_per_worker=0, **common),
                           strict=True))  # fmt: skip
        del pca
        logger.info("%d models x %d voxel batches on Ray", len(models), len(batches))
        data = _Data(reduced, Y_train, Y_test, groups)
        blocks = map_shards(_run_block, tasks, shared=data, num_gpus_per_worker=num_gpus, **common)
    results, k = {}, len(batches)
    for m, (name, spaces) in enumerate(models.items()):
        results[name] = _assemble(name, spaces, blocks[m * k : (m + 1) * k], reduced,
                                  len(Y_test), options.q)  # fmt: skip
    return results
