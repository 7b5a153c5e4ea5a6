"""Run a function over work items, in this process or on a Ray cluster.

:func:`map_shards` is the one mechanism behind every distributed stage. With
``executor="local"`` it is a plain loop; with ``executor="ray"`` each worker is
a Ray actor that runs ``setup()`` once (loading a model, say) and then takes
items one at a time, so fast workers take more. An item whose worker dies
(killed, out of memory, node lost) is given to another worker, up to
``max_retries`` times; the actor itself is restarted by Ray. Ray is imported
only on the ``"ray"`` path.

Results do not depend on the executor or the number of workers as long as
``fn(item)`` does not: the items, not the workers, define the work.

A large read-only value that every item needs (features, betas) goes in
``shared`` rather than in the items: Ray stores it once and each worker reads
it from the object store (without a copy for numpy arrays on its node).
:func:`executor_session` keeps one Ray connection across several calls.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: Values of the ``executor`` setting.
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Execution:
    """Where and how the heavy work runs: one object instead of eight keywords.

    None of these settings changes a result (the work items, not the workers,
    define the work), so none of them is part of a stage's cache key.

    Attributes
    ----------
    executor : {"local", "ray"}
        ``"local"``: this process, Ray is never imported. ``"ray"``: Ray actors.
    address : str, optional
        Ray cluster to use when Ray is not yet initialised in this process:
        ``None`` connects to a running local cluster or starts one, ``"auto"``
        the cluster of this machine (``ray start --head``), or ``"ray://host:10001"``.
    n_workers : int, optional
        Ray workers (actors). Default: as many as the cluster's CPUs (or GPUs)
        allow, at most one per item. Must be 1 or None with ``"local"``.
    num_cpus_per_worker : float
        CPUs reserved per Ray worker; Ray also sets its ``OMP_NUM_THREADS``.
    num_gpus_per_worker : float, optional
        GPUs per Ray worker (a fraction shares a GPU). None: 1 when ``device``
        is a CUDA device and the executor is Ray, else 0.
    max_retries : int
        Times an item is given to another worker after its worker died.
    shard_size : int
        Images per work item of feature extraction and reconstruction.
    voxel_batch_size : int, optional
        Voxels per work item of the encoding fits; None: as many as 4 GiB of
        betas and weights hold (``brainldm.encoding.default_voxel_batch_size``).
    device : str
        Torch device of the models (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Examples
    --------
    >>> Execution(executor="ray", n_workers=4).gpus_per_worker
    0
    """

    executor: str = "local"
    address: str | None = None
    n_workers: int | None = None
    num_cpus_per_worker: float = 1
    num_gpus_per_worker: float | None = None
    max_retries: int = 3
    shard_size: int = 8
    voxel_batch_size: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        from brainldm._utils import check_number, check_option

        check_option("executor", self.executor, EXECUTORS)
        if self.n_workers is not None:
            check_number("n_workers", self.n_workers, low=1, integer=True)
        if self.executor == "local" and self.n_workers not in (None, 1):
            raise ValueError(
                f"executor='local' runs one worker, got n_workers={self.n_workers!r}; "
                "use executor='ray' for more."
            )
        check_number("num_cpus_per_worker", self.num_cpus_per_worker, low=0, low_open=True)
        if self.num_gpus_per_worker is not None:
            check_number("num_gpus_per_worker", self.num_gpus_per_worker, low=0)
        check_number("max_retries", self.max_retries, low=0, integer=True)
        check_number("shard_size", self.shard_size, low=1, integer=True)
        if self.voxel_batch_size is not None:
            check_number("voxel_batch_size", self.voxel_batch_size, low=1, integer=True)
        on_gpu = str(self.device).startswith("cuda")
        if self.executor == "ray" and on_gpu and self.num_gpus_per_worker == 0:
            raise ValueError(
                f"device={self.device!r} needs GPUs on the Ray workers, got "
                "num_gpus_per_worker=0 (use 1, or 0.5 to share a GPU)."
            )

    @property
    def gpus_per_worker(self) -> float:
        """GPUs each Ray worker reserves (``num_gpus_per_worker`` resolved)."""
        if self.num_gpus_per_worker is not None:
            return self.num_gpus_per_worker
        return 1 if self.executor == "ray" and str(self.device).startswith("cuda") else 0


def as_execution(execution: Execution | str | None) -> Execution:
    """An :class:`Execution` from itself, an executor name, or None (local)."""
    if execution is None:
        return Execution()
    if isinstance(execution, str):
        return Execution(executor=execution)
    if not isinstance(execution, Execution):
        raise TypeError(
            f"execution must be an Execution, 'local' or 'ray', got {type(execution).__name__}."
        )
    return execution


@dataclass(frozen=True)
class Shard:
    """Some images to process together: a deterministic slice of the run, by nsd_id.

    Attributes
    ----------
    index : int
        Position of the shard in the plan (0, 1, ...).
    nsd_ids : tuple of int
        The shard's image ids, increasing.
    rows : tuple of int
        Where each of ``nsd_ids`` sits in the inputs the plan was made from.
    """

    index: int
    nsd_ids: tuple[int, ...]
    rows: tuple[int, ...]

    def __str__(self) -> str:
        return (
            f"shard {self.index} ({len(self.nsd_ids)} images, nsd_id "
            f"{self.nsd_ids[0]}..{self.nsd_ids[-1]})"
        )


def make_shards(nsd_ids: Sequence[int], shard_size: int) -> list[Shard]:
    """Split image ids into shards of ``shard_size`` consecutive ids, in increasing order.

    The plan depends only on the set of ids and ``shard_size``, not on their order
    or on the number of workers, so a re-run (or a run with more workers) has the
    very same shards.

    Parameters
    ----------
    nsd_ids : sequence of int
        Unique image ids.
    shard_size : int
        Images per shard; the last shard may be smaller.

    Returns
    -------
    shards : list of Shard

    Examples
    --------
    >>> [s.nsd_ids for s in make_shards([30, 10, 20], 2)]
    [(10, 20), (30,)]
    >>> [s.rows for s in make_shards([30, 10, 20], 2)]
    [(1, 2), (0,)]
    """
    from brainldm._utils import check_positive_int

    shard_size = check_positive_int("shard_size", shard_size)
    ids = [int(i) for i in nsd_ids]
    seen: set[int] = set()
    repeated = sorted({i for i in ids if i in seen or seen.add(i)})
    if repeated:
        raise ValueError(f"nsd_ids must be unique; repeated: {repeated[:5]}.")
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return [
        Shard(
            index=k,
            nsd_ids=tuple(ids[r] for r in order[start : start + shard_size]),
            rows=tuple(order[start : start + shard_size]),
        )
        for k, start in enumerate(range(0, len(order), shard_size))
    ]


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


def missing_outputs_error(
    what: str, missing: list[str], n_expected: int, where: str | os.PathLike
) -> MissingOutputsError:
    """The error for a run whose expected outputs are not all on disk (shows 10 of them)."""
    shown = ", ".join(missing[:10])
    if len(missing) > 10:
        shown += f", ... ({len(missing) - 10} more)"
    return MissingOutputsError(
        f"{len(missing)} of {n_expected} expected {what} are missing in {str(where)!r}: "
        f"{shown}. Run again to compute them (finished ones are kept).",
        missing,
    )


class _Worker:
    """Holds ``fn`` and the result of ``setup()``; Ray wraps it as an actor."""

    def __init__(self, fn: Callable, setup: Callable | None) -> None:
        self.fn = fn
        self.with_state = setup is not None
        self.state = setup() if self.with_state else None

    def run(self, item: Any, *shared: Any) -> Any:
        """``fn(item[, state][, shared])``; ``shared`` is the map's shared value, if any."""
        return self.fn(item, self.state, *shared) if self.with_state else self.fn(item, *shared)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError(
            "executor='ray' needs Ray: pip install 'brainldm[ray]' (or 'ray>=2.9')."
        ) from None
    return ray


@contextmanager
def executor_session(execution: Execution | str | None = None) -> Iterator[None]:
    """Keep one Ray connection open across several :func:`map_shards` calls.

    Without it, each ``map_shards(..., executor="ray")`` call starts a local
    Ray instance when none is running (and stops it at the end); inside it,
    they share one. Nothing happens for ``executor="local"`` (Ray is not imported).

    Parameters
    ----------
    execution : Execution or {"local", "ray"}, optional
        Its ``address`` is used when Ray is not yet initialised. A cluster
        started here is shut down at the end.

    Examples
    --------
    >>> with executor_session("local"):
    ...     map_shards(abs, [-1, 2])
    [1, 2]
    """
    execution = as_execution(execution)
    if execution.executor == "local":
        yield
        return
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=execution.address)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _describe(item: Any, limit: int = 120) -> str:
    text = str(item)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def map_shards(
    fn: Callable,
    items: Iterable[Any],
    setup: Callable[[], Any] | None = None,
    execution: Execution | str | None = None,
    retry_exceptions: bool = False,
    progress: bool = False,
    shared: Any = None,
) -> list:
    """``[fn(item) for item in items]``, in this process or on Ray workers.

    Parameters
    ----------
    fn : callable
        ``fn(item)``, or ``fn(item, state)`` when ``setup`` is given, with
        ``shared`` as a last argument when it is given. For Ray it
        must be picklable (a module-level function or a picklable object). Items
        must be safe to run twice: a retried item may have done part of its work.
    items : iterable
        Picklable work items (e.g. :class:`Shard`).
    setup : callable, optional
        ``setup() -> state``, run once per worker (and again when Ray restarts a
        dead worker): load a model, open a file.
    execution : Execution or {"local", "ray"}, optional
        Where the items run (executor, Ray address, workers, resources per
        worker, retries). Default: this process.
    retry_exceptions : bool
        Also retry items whose ``fn`` raised (default: raise at once).
    progress : bool
    shared : object, optional
        A read-only value that every item needs (e.g. large arrays), given to
        ``fn`` as its last argument. With Ray it is put in the object store once
        and each worker gets it from there (numpy arrays without a copy on the
        worker's node, read-only), instead of a copy pickled into every item.
        None: ``fn`` gets no such argument.

    Returns
    -------
    results : list
        ``fn``'s results, in the order of ``items``.

    Examples
    --------
    >>> map_shards(abs, [-1, 2, -3])
    [1, 2, 3]
    >>> map_shards(divmod, [7, 9], shared=4)
    [(1, 3), (2, 1)]
    """
    execution = as_execution(execution)
    items = list(items)
    if execution.executor == "local":
        return _map_local(fn, items, setup, progress, shared)
    return _map_ray(fn, items, setup, execution, retry_exceptions, progress, shared)


def _map_local(fn, items, setup, progress, shared):
    from tqdm.auto import tqdm

    if not items:
        return []
    worker = _Worker(fn, setup)
    extra = () if shared is None else (shared,)
    return [worker.run(item, *extra) for item in tqdm(items, disable=not progress, desc="shards")]


def _default_n_workers(ray, num_cpus_per_worker, num_gpus_per_worker) -> int:
    resources = ray.cluster_resources()
    if num_gpus_per_worker > 0:
        n = resources.get("GPU", 0) / num_gpus_per_worker
        if n < 1:
            raise ValueError(
                f"num_gpus_per_worker={num_gpus_per_worker} but the Ray cluster has "
                f"{resources.get('GPU', 0):g} GPU(s)."
            )
    else:
        n = resources.get("CPU", 1) / max(num_cpus_per_worker, 1e-3)
    return max(1, int(n))


def _map_ray(fn, items, setup, execution, retry_exceptions, progress, shared):
    ray = _import_ray()
    e = execution
    address, n_workers, max_retries = e.address, e.n_workers, e.max_retries
    num_cpus_per_worker, num_gpus_per_worker = e.num_cpus_per_worker, e.gpus_per_worker
    from tqdm.auto import tqdm

    if not items:
        return []
    started = not ray.is_initialized()
    if started:
        ray.init(address=address)
    actors = []
    try:
        if n_workers is None:
            n_workers = _default_n_workers(ray, num_cpus_per_worker, num_gpus_per_worker)
        n_workers = min(int(n_workers), len(items))
        # max_restarts=-1: a dead actor comes back (running setup() again); the
        # retry budget is per item, counted here, so a poisonous item still ends the run.
        worker_class = ray.remote(_Worker).options(
            num_cpus=num_cpus_per_worker,
            num_gpus=num_gpus_per_worker,
            max_restarts=-1,
            max_task_retries=0,
        )
        actors = [worker_class.remote(fn, setup) for _ in range(n_workers)]
        # One copy of `shared` in the object store. Its reference goes with every
        # item (not to the actors' constructors, which would break their restarts:
        # ray-project/ray#53727); Ray copies the object to a node once, and a
        # worker maps its numpy arrays from there without a copy.
        extra = () if shared is None else (ray.put(shared),)
        logger.info("%d items on %d Ray workers", len(items), n_workers)
        results: list = [None] * len(items)
        failures = [0] * len(items)
        todo = deque(range(len(items)))
        idle = deque(actors)
        running: dict = {}
        with tqdm(total=len(items), disable=not progress, desc="shards") as bar:
            while todo or running:
                while todo and idle:
                    i = todo.popleft()
                    actor = idle.popleft()
                    running[actor.run.remote(items[i], *extra)] = (i, actor)
                [ref], _ = ray.wait(list(running), num_returns=1)
                i, actor = running.pop(ref)
                idle.append(actor)
                try:
                    results[i] = ray.get(ref)
                except ray.exceptions.RayTaskError as err:  # fn raised
                    if not retry_exceptions or failures[i] >= max_retries:
                        # err is also an instance of the original exception's class
                        logger.error("%s failed on a Ray worker", _describe(items[i]))
                        raise
                    failures[i] += 1
                    todo.append(i)
                    logger.warning(
                        "retrying %s (%d/%d) after: %r",
                        _describe(items[i]), failures[i], max_retries, err.cause,
                    )  # fmt: skip
                    continue
                except ray.exceptions.RayError as err:  # the worker died
                    if getattr(err, "actor_init_failed", False):
                        raise RuntimeError(f"a Ray worker failed to start (setup): {err}") from err
                    if failures[i] >= max_retries:
                        raise RuntimeError(
                            f"{_describe(items[i])}: its worker died {failures[i] + 1} times "
                            f"(max_retries={max_retries}); last error: {err}"
                        ) from err
                    failures[i] += 1
                    todo.append(i)
                    logger.warning(
                        "worker died on %s; retrying (%d/%d)",
                        _describe(items[i]), failures[i], max_retries,
                    )  # fmt: skip
                    continue
                bar.update()
        return results
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
