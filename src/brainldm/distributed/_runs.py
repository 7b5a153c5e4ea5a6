"""Feature extraction and reconstruction split into shards by nsd_id, run by :func:`map_shards`.

Each shard calls the one-process function (:func:`~brainldm.features.extract_features`,
:func:`~brainldm.reconstruction.reconstruct`) on its images. Those already skip
what is on disk and write each output atomically, so a shard that is retried
after its worker died finishes the work instead of redoing it, and every image's
seed comes from (seed, nsd_id, sample), not from the shard or worker. A final
step, in the calling process, checks that every expected output exists once,
removes temporaries left by killed workers and writes the reconstruction index.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brainldm.distributed._executors import Shard, make_shards, map_shards

logger = logging.getLogger(__name__)


class MissingOutputsError(RuntimeError):
    """Some expected outputs of a run are not on disk.

    Attributes
    ----------
    missing : list of str
        The missing outputs (paths relative to the output folder).
    """

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = list(missing)


def _load_model(model, device: str):
    if callable(model):
        return model()
    from brainldm.ldm import load_ldm

    return load_ldm(model, device=device)


def _model_setup(model, device: str) -> Callable[[], Any]:
    """Return a picklable ``setup()`` that loads the model once per worker."""
    if not callable(model):
        model = Path(model).expanduser().absolute()
    return functools.partial(_load_model, model, device)


def _gpus_per_worker(executor: str, device: str, num_gpus_per_worker: float | None) -> float:
    on_gpu = str(device).startswith("cuda")
    if num_gpus_per_worker is None:
        return 1 if on_gpu and executor == "ray" else 0
    if executor == "ray" and on_gpu and num_gpus_per_worker <= 0:
        raise ValueError(
            f"device={device!r} needs GPUs on the Ray workers, got "
            f"num_gpus_per_worker={num_gpus_per_worker!r} (use 1, or 0.5 to share a GPU)."
        )
    return num_gpus_per_worker


def _remove_temporaries(folders: Sequence[Path]) -> int:
    """Delete the ``.tmp-*`` files that killed workers left behind (atomic_path's names)."""
    from brainldm._utils import remove_temporaries

    n = remove_temporaries(folders)
    if n:
        logger.info("removed %d temporary file(s) left by interrupted workers", n)
    return n


def _missing_error(what: str, missing: list[str], n_expected: int, where: Path):
    shown = ", ".join(missing[:10])
    if len(missing) > 10:
        shown += f", ... ({len(missing) - 10} more)"
    return MissingOutputsError(
        f"{len(missing)} of {n_expected} expected {what} are missing in {str(where)!r}: "
        f"{shown}. Run again to compute them (finished ones are kept).",
        missing,
    )


# --- reconstruction ----------------------------------------------------------------------------


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
    from brainldm.reconstruction import reconstruct

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

    from brainldm._utils import atomic_path, check_choices
    from brainldm.reconstruction import CONDITIONS, INDEX_COLUMNS, ReconstructionConfig, sample_seed
    from brainldm.reconstruction._reconstruct import _png_path

    config = ReconstructionConfig() if config is None else config
    conditions = tuple(check_choices("conditions", conditions, CONDITIONS))
    out_dir = Path(out_dir)
    ids = sorted(int(i) for i in nsd_ids)
    _remove_temporaries([out_dir, *(out_dir / c for c in conditions)])
    expected = [
        {
            "nsd_id": i,
            "condition": cond,
            "sample": k,
            "seed": sample_seed(config.seed, i, k),
            "path": _png_path(cond, i, k),
        }
        for cond in conditions
        for i in ids
        for k in range(1 if cond == "z" else config.n_samples)  # as reconstruct: z is deterministic
    ]
    missing = [row["path"] for row in expected if not (out_dir / row["path"]).is_file()]
    if missing:
        raise _missing_error("images", missing, len(expected), out_dir)

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
    executor: str = "local",
    address: str | None = None,
    n_workers: int | None = None,
    shard_size: int = 8,
    device: str = "cpu",
    num_cpus_per_worker: float = 1,
    num_gpus_per_worker: float | None = None,
    max_retries: int = 3,
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
    executor : {"local", "ray"}
        See :func:`map_shards`, as are ``address``, ``n_workers`` and ``max_retries``.
    address : str, optional
    n_workers : int, optional
    shard_size : int
        Images per shard (the unit of work and of retry).
    device : str
        Where each worker runs the model (``"cpu"``, ``"cuda"``).
    num_cpus_per_worker : float
        CPUs per Ray worker, which are also its torch threads. On CPUs, results
        are bit-identical only between runs with the same number of threads
        (compare a local run under ``torch.set_num_threads(1)`` with 1-CPU workers).
    num_gpus_per_worker : float, optional
        Default 1 with ``executor="ray"`` and a CUDA ``device``, else 0.
    max_retries : int
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
    from brainldm.reconstruction import ReconstructionConfig
    from brainldm.reconstruction._reconstruct import _check_inputs

    config = ReconstructionConfig() if config is None else config
    conditions = tuple(conditions)
    _check_inputs(image_latents, text_embeddings, nsd_ids, conditions)
    num_gpus = _gpus_per_worker(executor, device, num_gpus_per_worker)
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
        for shard in make_shards(nsd_ids, shard_size)
    ]
    map_shards(
        _reconstruct_shard,
        tasks,
        setup=_model_setup(model, device),
        executor=executor,
        address=address,
        n_workers=n_workers,
        num_cpus_per_worker=num_cpus_per_worker,
        num_gpus_per_worker=num_gpus,
        max_retries=max_retries,
        progress=progress,
    )
    return finalize_reconstruction(out_dir, nsd_ids, conditions, config)


# --- feature extraction ------------------------------------------------------------------------


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
    from brainldm.features import extract_features

    extract_features(
        ldm, task.folder, list(task.shard.nsd_ids), images=task.images, captions=task.captions,
        **task.options,
    )  # fmt: skip


def finalize_features(
    folder: str | os.PathLike, nsd_ids: Sequence[int], features: Sequence[str] = ("z", "c")
) -> dict:
    """Check that the feature stores hold every ``nsd_id``; remove workers' temporaries.

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
        Listing the missing entries as ``"{feature}/{nsd_id:06d}.npy"``.
    """
    from brainldm.features import FeatureStore

    folder = Path(folder)
    stores, missing = {}, []
    for name in features:
        _remove_temporaries([folder / name])
        if not (folder / name / "meta.json").exists():
            missing += [f"{name}/{int(i):06d}.npy" for i in nsd_ids]
            continue
        stores[name] = FeatureStore(folder, name)
        missing += [f"{name}/{i:06d}.npy" for i in stores[name].missing(nsd_ids)]
    if missing:
        raise _missing_error("feature entries", missing, len(features) * len(nsd_ids), folder)
    return stores


def run_feature_extraction(
    model: str | os.PathLike | Callable[[], Any],
    folder: str | os.PathLike,
    nsd_ids: Sequence[int],
    images: np.ndarray | Callable | None = None,
    captions: Sequence[Sequence[str]] | Callable | None = None,
    features: Sequence[str] = ("z", "c"),
    z_size: int = 320,
    z_posterior: str = "mean",
    seed: int = 42,
    batch_size: int = 8,
    executor: str = "local",
    address: str | None = None,
    n_workers: int | None = None,
    shard_size: int = 64,
    device: str = "cpu",
    num_cpus_per_worker: float = 1,
    num_gpus_per_worker: float | None = None,
    max_retries: int = 3,
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
        See :func:`run_reconstruction`.
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
    executor, address, n_workers, shard_size, device
        See :func:`run_reconstruction`.
    num_cpus_per_worker, num_gpus_per_worker, max_retries, progress
        See :func:`run_reconstruction`.

    Returns
    -------
    stores : dict of str to FeatureStore

    Raises
    ------
    MissingOutputsError
        If an entry is missing at the end.
    """
    from brainldm._utils import check_choices

    features = tuple(check_choices("features", features, ("z", "c")))
    ids = [int(i) for i in nsd_ids]
    for name, source, needed in (("images", images, "z"), ("captions", captions, "c")):
        if needed in features and source is None:
            raise ValueError(f"features includes {needed!r}: pass {name}=...")
        if source is not None and not callable(source) and len(source) != len(ids):
            raise ValueError(f"{name} has {len(source)} rows but nsd_ids has {len(ids)}.")
    if images is not None and not callable(images):
        images = np.asarray(images)
    num_gpus = _gpus_per_worker(executor, device, num_gpus_per_worker)
    folder = Path(folder).expanduser().absolute()
    options = dict(features=features, z_size=z_size, z_posterior=z_posterior, seed=seed,
                   batch_size=batch_size)  # fmt: skip
    tasks = [
        _FeatureShard(
            shard, folder, _shard_loader(images, shard), _shard_loader(captions, shard), options
        )
        for shard in make_shards(ids, shard_size)
    ]
    map_shards(
        _extract_shard,
        tasks,
        setup=_model_setup(model, device),
        executor=executor,
        address=address,
        n_workers=n_workers,
        num_cpus_per_worker=num_cpus_per_worker,
        num_gpus_per_worker=num_gpus,
        max_retries=max_retries,
        progress=progress,
    )
    return finalize_features(folder, ids, features)
