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
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: Values of the ``executor`` setting.
EXECUTORS = ("local", "ray")


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
def executor_session(executor: str = "local", address: str | None = None) -> Iterator[None]:
    """Keep one Ray connection open across several :func:`map_shards` calls.

    Without it, each ``map_shards(..., executor="ray")`` call starts a local
    Ray instance when none is running (and stops it at the end); inside it,
    they share one. Nothing happens for ``executor="local"`` (Ray is not imported).

    Parameters
    ----------
    executor : {"local", "ray"}
    address : str, optional
        See :func:`map_shards`; used when Ray is not yet initialised. A cluster
        started here is shut down at the end.

    Examples
    --------
    >>> with executor_session("local"):
    ...     map_shards(abs, [-1, 2])
    [1, 2]
    """
    from brainldm._utils import check_option

    check_option("executor", executor, EXECUTORS)
    if executor == "local":
        yield
        return
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address)
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
    executor: str = "local",
    address: str | None = None,
    n_workers: int | None = None,
    num_cpus_per_worker: float = 1,
    num_gpus_per_worker: float = 0,
    max_retries: int = 3,
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
    executor : {"local", "ray"}
        ``"local"``: one worker, this process, Ray is not imported. ``"ray"``: the
        cluster at ``address``.
    address : str, optional
        Ray cluster to use when Ray is not yet initialised in this process:
        ``None`` connects to a running local cluster or starts one, ``"auto"``
        connects to the cluster of this machine (``ray start --head``), or
        ``"ray://host:10001"``. A cluster started here is shut down at the end.
    n_workers : int, optional
        Ray workers (actors). Default: as many as the cluster's CPUs (or GPUs,
        with ``num_gpus_per_worker``) allow, at most one per item. Must be 1 or
        None with ``"local"``.
    num_cpus_per_worker : float
        CPUs reserved per Ray worker; Ray also sets its ``OMP_NUM_THREADS``.
    num_gpus_per_worker : float
        GPUs per Ray worker (a fraction shares a GPU). Ray sets
        ``CUDA_VISIBLE_DEVICES``, so the worker's ``"cuda"`` is its own GPU.
    max_retries : int
        Times an item is given to another worker after its worker died.
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
    from brainldm._utils import check_option

    check_option("executor", executor, EXECUTORS)
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries!r}.")
    items = list(items)
    if executor == "local":
        if n_workers not in (None, 1):
            raise ValueError(
                f"executor='local' runs one worker, got n_workers={n_workers!r}; "
                "use executor='ray' for more."
            )
        return _map_local(fn, items, setup, progress, shared)
    return _map_ray(fn, items, setup, address, n_workers, num_cpus_per_worker,
                    num_gpus_per_worker, max_retries, retry_exceptions, progress,
                    shared)  # fmt: skip


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


def _map_ray(fn, items, setup, address, n_workers, num_cpus_per_worker, num_gpus_per_worker,
             max_retries, retry_exceptions, progress, shared):  # fmt: skip
    ray = _import_ray()
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
