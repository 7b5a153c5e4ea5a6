"""Where the heavy work runs: in this process, or in shards on a Ray cluster.

An :class:`Execution` says where (executor, Ray address, workers, CPUs/GPUs per
worker, retries, shard size, device); :func:`map_shards` runs work items there.
``executor="local"`` (the default) runs everything in this process and never
imports Ray; ``executor="ray"`` runs the items on Ray actors, one setup (model
load) per actor, retrying the items of workers that die. The sharded stages
are :func:`brainldm.features.run_feature_extraction`,
:func:`brainldm.reconstruction.run_reconstruction` and the encoding fits
(:func:`brainldm.encoding.run_encoding_analyses`, work items: model × voxel
batch). Install Ray with the ``ray`` extra (``pip install brainldm[ray]``).
See ``docs/scaling.md``.
"""

from brainldm.distributed._executors import (
    EXECUTORS,
    Execution,
    MissingOutputsError,
    Shard,
    as_execution,
    executor_session,
    make_shards,
    map_shards,
    missing_outputs_error,
)

__all__ = [
    "Execution",
    "as_execution",
    "EXECUTORS",
    "Shard",
    "make_shards",
    "map_shards",
    "executor_session",
    "MissingOutputsError",
    "missing_outputs_error",
]
