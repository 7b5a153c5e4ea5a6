"""LDM features → brain: voxel-wise encoding models and their statistics."""

from brainldm.encoding._analyses import (
    EncodingAnalyses,
    fit_encoding_model,
    run_encoding_analyses,
)
from brainldm.encoding._distribute import (
    VOXEL_BLOCK_BUDGET_BYTES,
    default_voxel_batch_size,
    fit_models,
)
from brainldm.encoding._models import (
    PAPER_N_COMPONENTS,
    EncodingBlock,
    EncodingResult,
    FitOptions,
    ReducedSpace,
    assemble_encoding_result,
    fit_voxel_block,
    model_cv_strategy,
    reduce_features,
    reduce_space,
    voxel_batches,
)
from brainldm.encoding._pca import StreamedPCA, streamed_pca
from brainldm.encoding._stats import (
    best_layer,
    correlation_pvalues,
    fdr_significant,
    map_agreement,
    pearson_r,
    unique_variance,
)

__all__ = [
    "fit_encoding_model",
    "run_encoding_analyses",
    "fit_models",
    "FitOptions",
    "reduce_features",
    "streamed_pca",
    "StreamedPCA",
    # the pieces of a fit: reduce once, fit voxel blocks, assemble (p, FDR over all voxels)
    "reduce_space",
    "model_cv_strategy",
    "fit_voxel_block",
    "assemble_encoding_result",
    "voxel_batches",
    "default_voxel_batch_size",
    "VOXEL_BLOCK_BUDGET_BYTES",
    "ReducedSpace",
    "EncodingBlock",
    "EncodingResult",
    "EncodingAnalyses",
    "PAPER_N_COMPONENTS",
    "pearson_r",
    "correlation_pvalues",
    "fdr_significant",
    "map_agreement",
    "unique_variance",
    "best_layer",
]
