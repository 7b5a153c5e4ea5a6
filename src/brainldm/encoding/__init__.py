"""LDM features → brain: voxel-wise encoding models and their statistics."""

from brainldm.encoding._models import (
    PAPER_N_COMPONENTS,
    EncodingAnalyses,
    EncodingBlock,
    EncodingResult,
    ReducedSpace,
    assemble_encoding_result,
    fit_encoding_model,
    fit_voxel_block,
    reduce_features,
    reduce_space,
    run_encoding_analyses,
    voxel_batches,
)
from brainldm.encoding._stats import (
    best_layer,
    correlation_pvalues,
    fdr_significant,
    pearson_r,
    unique_variance,
)

__all__ = [
    "fit_encoding_model",
    "run_encoding_analyses",
    "reduce_features",
    # the pieces of a fit: reduce once, fit voxel blocks, assemble (p, FDR over all voxels)
    "reduce_space",
    "fit_voxel_block",
    "assemble_encoding_result",
    "voxel_batches",
    "ReducedSpace",
    "EncodingBlock",
    "EncodingResult",
    "EncodingAnalyses",
    "PAPER_N_COMPONENTS",
    "pearson_r",
    "correlation_pvalues",
    "fdr_significant",
    "unique_variance",
    "best_layer",
]
