"""LDM features → brain: voxel-wise encoding models and their statistics."""

from brainldm.encoding._models import (
    PAPER_N_COMPONENTS,
    EncodingAnalyses,
    EncodingResult,
    fit_encoding_model,
    reduce_features,
    run_encoding_analyses,
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
    "EncodingResult",
    "EncodingAnalyses",
    "PAPER_N_COMPONENTS",
    "pearson_r",
    "correlation_pvalues",
    "fdr_significant",
    "unique_variance",
    "best_layer",
]
