"""Feature extraction in shards of images, in this process or on Ray workers.

Each shard calls :func:`extract_features` on its images; the stores skip what
is on disk and write each batch as one part file, atomically, so a retried
shard finishes the work. :func:`finalize_features`, in the calling process,
removes temporaries left by killed workers, checks that every entry exists and
consolidates each store's parts into one file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brainldm.config import FeaturesConfig
from brainldm.distributed import (
    Execution,
    Shard,
    as_execution,
    make_shards,
    map_shards,
    missing_outputs_error,
)
from brainldm.features._store import FeatureStore, extract_features
from brainldm.ldm import ldm_loader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Rows:
    """``loader(ids)`` over values given as rows aligned with ``nsd_ids``."""

    nsd_ids: tuple[int, ...]
    values: Any

    def __call__(self, ids):
        where = {i: k for k, i in enumerate(self.nsd_ids)}
        rows = [where[int(i)] for i in ids]
        if isinstance(self.values, np.ndarray):
            return self.values[rows]
        return [self.values[r] for r in rows]


def _shard_loader(source, shard: Shard):
    if source is None or callable(source):
        return source
    if isinstance(source, np.ndarray):
        return _Rows(shard.nsd_ids, source[list(shard.rows)])
    return _Rows(shard.nsd_ids, [source[r] for r in shard.rows])


@dataclass(frozen=True)
class _FeatureShard:
    shard: Shard
    folder: Path
    images: Any
    captions: Any
    options: dict

    def __str__(self) -> str:
        return str(self.shard)


def _extract_shard(task: _FeatureShard, ldm) -> None:
    extract_features(
        ldm, task.folder, list(task.shard.nsd_ids), images=task.images, captions=task.captions,
        **task.options,
    )  # fmt: skip


def finalize_features(
    folder: str | os.PathLike, nsd_ids: Sequence[int], features: Sequence[str] = ("z", "c")
) -> dict:
    """Check that the feature stores hold every ``nsd_id``, then consolidate them.

    Call it once every worker has finished: it removes the temporaries of
    killed workers, and :meth:`FeatureStore.consolidate` merges each store's
    part files into its ``data.h5``.

    Parameters
    ----------
    folder : path-like
        Root of the feature stores.
    nsd_ids : sequence of int
    features : sequence of str
        Store names (``"z"``, ``"c"``).

    Returns
    -------
    stores : dict of str to FeatureStore

    Raises
    ------
    MissingOutputsError
        Listing the missing entries as ``"{feature}/{nsd_id:06d}"`` (nothing is
        consolidated then).
    """
    from brainldm._utils import remove_temporaries

    folder = Path(folder)
    stores, missing = {}, []
    for name in features:
        if remove_temporaries([folder / name, folder / name / "parts"]):
            logger.info("removed temporary files left by interrupted workers in %s", name)
        if not (folder / name / "meta.json").exists():
            missing += [f"{name}/{int(i):06d}" for i in nsd_ids]
            continue
        stores[name] = FeatureStore(folder, name)
        missing += [f"{name}/{i:06d}" for i in stores[name].missing(nsd_ids)]
    if missing:
        raise missing_outputs_error(
            "feature entries", missing, len(features) * len(nsd_ids), folder
        )
    for store in stores.values():
        store.consolidate()
    return stores


def run_feature_extraction(
    model: str | os.PathLike | Callable[[], Any],
    folder: str | os.PathLike,
    nsd_ids: Sequence[int],
    images: np.ndarray | Callable | None = None,
    captions: Sequence[Sequence[str]] | Callable | None = None,
    features: Sequence[str] = ("z", "c"),
    z_size: int = FeaturesConfig.z_size,
    z_posterior: str = FeaturesConfig.z_posterior,
    seed: int = 42,
    batch_size: int = 8,
    execution: Execution | str | None = None,
    progress: bool = False,
) -> dict:
    """:func:`~brainldm.features.extract_features`, in shards of images, locally or on Ray.

    The stores are byte-identical whatever the executor and the number of workers
    (the shards, fixed by ``shard_size``, are the same). Networks see batches of
    ``batch_size`` images within a shard, so a different ``shard_size`` can change
    the last bits of a value unless ``batch_size`` divides it.

    Parameters
    ----------
    model : path-like or callable
        See :func:`brainldm.reconstruction.run_reconstruction`.
    folder : path-like
        Root of the feature stores (``folder/z``, ``folder/c``), shared by every worker.
    nsd_ids : sequence of int
        Unique image ids.
    images : ndarray of uint8 of shape (n_images, H, W, 3), or callable, optional
        Rows aligned with ``nsd_ids``, or a picklable ``images(ids) -> uint8
        (len(ids), H, W, 3)`` run on the workers (e.g.
        ``functools.partial(load_stimulus_images, layout)``: each worker reads
        its own images). Needed for ``"z"``.
    captions : sequence of sequence of str, or callable, optional
        Aligned with ``nsd_ids``, or ``captions(ids) -> list of list of str``.
        Needed for ``"c"``.
    features, z_size, z_posterior, seed, batch_size
        See :func:`~brainldm.features.extract_features`.
    execution : Execution or {"local", "ray"}, optional
        Where the shards run (:class:`~brainldm.distributed.Execution`): its
        ``shard_size`` images per shard, its ``device`` for the model.
    progress : bool
        A progress bar over shards.

    Returns
    -------
    stores : dict of str to FeatureStore

    Raises
    ------
    MissingOutputsError
        If an entry is missing at the end.
    """
    from brainldm._utils import check_choices

    execution = as_execution(execution)
    features = tuple(check_choices("features", features, ("z", "c")))
    ids = [int(i) for i in nsd_ids]
    for name, source, needed in (("images", images, "z"), ("captions", captions, "c")):
        if needed in features and source is None:
            raise ValueError(f"features includes {needed!r}: pass {name}=...")
        if source is not None and not callable(source) and len(source) != len(ids):
            raise ValueError(f"{name} has {len(source)} rows but nsd_ids has {len(ids)}.")
    if images is not None and not callable(images):
        images = np.asarray(images)
    folder = Path(folder).expanduser().absolute()
    options = dict(features=features, z_size=z_size, z_posterior=z_posterior, seed=seed,
                   batch_size=batch_size)  # fmt: skip
    tasks = [
        _FeatureShard(
            shard, folder, _shard_loader(images, shard), _shard_loader(captions, shard), options
        )
        for shard in make_shards(ids, execution.shard_size)
    ]
    map_shards(
        _extract_shard,
        tasks,
        setup=ldm_loader(model, execution.device),
        execution=execution,
        progress=progress,
    )
    return finalize_features(folder, ids, features)
