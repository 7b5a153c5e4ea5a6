"""Reconstruction in shards of images, in this process or on Ray workers.

Each shard calls :func:`reconstruct` on its images, which skips what is on
disk and writes each PNG atomically, so a shard retried after its worker died
finishes the work instead of redoing it; every image's seed comes from (seed,
nsd_id, sample), not from the shard or worker. :func:`finalize_reconstruction`,
in the calling process, checks that every image exists once, removes
temporaries left by killed workers and writes the index.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brainldm.config import ReconstructionConfig
from brainldm.distributed import (
    Execution,
    Shard,
    as_execution,
    make_shards,
    map_shards,
    missing_outputs_error,
)
from brainldm.ldm import ldm_loader
from brainldm.reconstruction._reconstruct import (
    CONDITIONS,
    INDEX_COLUMNS,
    check_reconstruction_inputs,
    png_path,
    reconstruct,
    sample_seed,
    samples_per_image,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _ReconstructionShard:
    shard: Shard
    image_latents: np.ndarray | None
    text_embeddings: np.ndarray | None
    out_dir: Path
    conditions: tuple[str, ...]
    config: Any
    batch_size: int
    batch_invariant: bool

    def __str__(self) -> str:
        return str(self.shard)


def _reconstruct_shard(task: _ReconstructionShard, ldm) -> int:
    index = reconstruct(
        ldm, task.image_latents, task.text_embeddings, list(task.shard.nsd_ids), task.out_dir,
        task.conditions, task.config, task.batch_size, task.batch_invariant,
    )  # fmt: skip
    return len(index)


def _index_key(row: dict) -> tuple[str, int, int]:
    return row["condition"], int(row["nsd_id"]), int(row["sample"])


def finalize_reconstruction(
    out_dir: str | os.PathLike,
    nsd_ids: Sequence[int],
    conditions: Sequence[str] = ("zc", "z", "c"),
    config=None,
):
    """Check that every image of a reconstruction run exists, and write its index.

    Removes the temporary files of interrupted workers, raises if an image is
    missing, then writes ``index.csv`` with exactly one row per image (rows of
    other images already indexed in ``out_dir`` are kept), as
    :func:`~brainldm.reconstruction.reconstruct` writes it.

    Parameters
    ----------
    out_dir : path-like
    nsd_ids : sequence of int
    conditions : sequence of {"zc", "z", "c"}
    config : ReconstructionConfig, optional

    Returns
    -------
    index : pandas.DataFrame
        Columns ``nsd_id, condition, sample, seed, path``, for these images.

    Raises
    ------
    MissingOutputsError
        Listing the missing images.
    """
    import pandas as pd

    from brainldm._utils import atomic_path, check_choices, remove_temporaries

    config = ReconstructionConfig() if config is None else config
    conditions = tuple(check_choices("conditions", conditions, CONDITIONS))
    out_dir = Path(out_dir)
    ids = sorted(int(i) for i in nsd_ids)
    if remove_temporaries([out_dir, *(out_dir / c for c in conditions)]):
        logger.info("removed temporary files left by interrupted workers in %s", out_dir)
    expected = [
        {
            "nsd_id": i,
            "condition": cond,
            "sample": k,
            "seed": sample_seed(config.seed, i, k),
            "path": png_path(cond, i, k),
        }
        for cond in conditions
        for i in ids
        for k in range(samples_per_image(cond, config))
    ]
    missing = [row["path"] for row in expected if not (out_dir / row["path"]).is_file()]
    if missing:
        raise missing_outputs_error("images", missing, len(expected), out_dir)

    # Workers write index.csv concurrently, so it may lack rows: rebuild this run's rows.
    index_path = out_dir / "index.csv"
    previous = pd.read_csv(index_path).to_dict("records") if index_path.exists() else []
    ours = {_index_key(row) for row in expected}
    rows = [row for row in previous if _index_key(row) not in ours] + expected
    frame = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    repeated = frame[frame.duplicated(["condition", "nsd_id", "sample"], keep=False)]
    if len(repeated):
        raise ValueError(f"{str(index_path)!r} lists some images twice:\n{repeated.head(10)}")
    frame = frame.sort_values(["condition", "nsd_id", "sample"], kind="stable")
    with atomic_path(index_path) as tmp:
        frame.to_csv(tmp, index=False)
    index = pd.read_csv(index_path)
    wanted = index["nsd_id"].isin(ids) & index["condition"].isin(conditions)
    return index[wanted].reset_index(drop=True)


def run_reconstruction(
    model: str | os.PathLike | Callable[[], Any],
    image_latents: np.ndarray | None,
    text_embeddings: np.ndarray | None,
    nsd_ids: Sequence[int],
    out_dir: str | os.PathLike,
    conditions: Sequence[str] = ("zc", "z", "c"),
    config=None,
    batch_size: int = 4,
    batch_invariant: bool = True,
    execution: Execution | str | None = None,
    progress: bool = False,
):
    """:func:`~brainldm.reconstruction.reconstruct`, in shards of images, locally or on Ray.

    With ``batch_invariant=True`` (the default) the PNGs and ``index.csv`` are
    byte-identical to one ``reconstruct`` call, whatever the executor, the number
    of workers and the shard size (on CPUs, for the same number of torch threads:
    see ``num_cpus_per_worker``). The run resumes what is in ``out_dir``.

    Parameters
    ----------
    model : path-like or callable
        Stable Diffusion weights, loaded once per worker with
        ``load_ldm(model, device=device)`` (the path must exist on every node),
        or a picklable ``model() -> LatentDiffusion`` (e.g. a
        ``functools.partial(load_ldm, path, device="cuda", dtype=torch.float16)``).
    image_latents : ndarray of shape (n_images, 4, 40, 40), or None without "zc"/"z"
        Decoded z.
    text_embeddings : ndarray of shape (n_images, 77, d), or None without "zc"/"c"
        Decoded c.
    nsd_ids : sequence of int
        Unique ids of the images, one per row.
    out_dir : path-like
        As for ``reconstruct``; shared by every worker (a shared file system on a cluster).
    conditions : sequence of {"zc", "z", "c"}
    config : ReconstructionConfig, optional
    batch_size, batch_invariant
        See :func:`~brainldm.reconstruction.generate`.
    execution : Execution or {"local", "ray"}, optional
        Where the shards run (:class:`~brainldm.distributed.Execution`): its
        ``shard_size`` images per shard (the unit of work and of retry), its
        ``device`` for the model. On CPUs, results are bit-identical only between
        runs with the same number of torch threads (``num_cpus_per_worker`` sets a
        Ray worker's; compare a local run under ``torch.set_num_threads(1)``).
    progress : bool
        A progress bar over shards.

    Returns
    -------
    index : pandas.DataFrame
        Columns ``nsd_id, condition, sample, seed, path``, one row per image.

    Raises
    ------
    MissingOutputsError
        If an image is missing at the end.
    """
    execution = as_execution(execution)
    config = ReconstructionConfig() if config is None else config
    conditions = tuple(conditions)
    check_reconstruction_inputs(image_latents, text_embeddings, nsd_ids, conditions)
    out_dir = Path(out_dir).expanduser().absolute()
    z = None if image_latents is None else np.asarray(image_latents)
    c = None if text_embeddings is None else np.asarray(text_embeddings)
    tasks = [
        _ReconstructionShard(
            shard,
            None if z is None else z[list(shard.rows)],
            None if c is None else c[list(shard.rows)],
            out_dir,
            conditions,
            config,
            batch_size,
            batch_invariant,
        )
        for shard in make_shards(nsd_ids, execution.shard_size)
    ]
    map_shards(
        _reconstruct_shard,
        tasks,
        setup=ldm_loader(model, execution.device),
        execution=execution,
        progress=progress,
    )
    return finalize_reconstruction(out_dir, nsd_ids, conditions, config)
