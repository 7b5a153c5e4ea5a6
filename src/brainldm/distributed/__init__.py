"""Scale-out: the same results as one process, from shards of images on a Ray cluster.

``executor="local"`` (the default) runs everything in this process and never
imports Ray; ``executor="ray"`` runs the shards on Ray actors, one model load
per actor, retrying the shards of workers that die. Encoding fits
(:func:`brainldm.encoding.run_encoding_analyses`) use the same mechanism, with
(model, voxel batch) work items. Install Ray with the ``ray`` extra
(``pip install brainldm[ray]``). See ``docs/scaling.md``.
"""

from brainldm.distributed._executors import (
    EXECUTORS,
    Shard,
    executor_session,
    make_shards,
    map_shards,
)
from brainldm.distributed._runs import (
    MissingOutputsError,
    finalize_features,
    finalize_reconstruction,
    run_feature_extraction,
    run_reconstruction,
)

__all__ = [
    # the mechanism
    "EXECUTORS",
    "Shard",
    "make_shards",
    "map_shards",
    "executor_session",
    # the stages
    "run_feature_extraction",
    "run_reconstruction",
    # the final checks
    "finalize_features",
    "finalize_reconstruction",
    "MissingOutputsError",
]
