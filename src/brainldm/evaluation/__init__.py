"""Evaluation of reconstructions: two-way identification, the NSD metric suite, statistics.

Three protocols (:data:`PROTOCOLS`):

* ``"takagi"``: the paper's code (AlexNet layers 2/5/7 and Inception V3 at
  299 px, CLIP ViT-L/14 embedding and hidden layers 6 and 12; identification
  anchored on the original, correlations averaged over samples);
* ``"mindeye"``: MindEye2's ``final_evaluations`` (PixCorr, SSIM, AlexNet(2)/(5),
  InceptionV3, CLIP, EffNet-B, SwAV);
* ``"braindiffuser"``: the same suite with Brain-Diffuser's preprocessing.

Importing this package loads no torch; :func:`two_way_identification`,
:func:`correlation_distance`, :func:`pixcorr`, :func:`ssim` and the statistics
are numpy/scipy only. Network weights are read from local files only.
"""

from brainldm.evaluation._identification import (
    IDENTIFICATION_PROTOCOLS,
    IdentificationResult,
    correlation_distance,
    two_way_identification,
)
from brainldm.evaluation._images import (
    CONDITIONS,
    INDEX_COLUMNS,
    load_image_folder,
    load_reconstructions,
    prepare_pixel_images,
)
from brainldm.evaluation._networks import (
    CLIP_VIT_L14_CONFIG,
    CLIP_WEIGHT_NAMES,
    build_network,
    extract_network_features,
    file_sha256,
    load_network,
    preprocess_images,
    torchvision_sha256_prefix,
)
from brainldm.evaluation._offline import offline_suite
from brainldm.evaluation._pixel import GRAY_WEIGHTS, pixcorr, rgb_to_gray, ssim
from brainldm.evaluation._plots import plot_identification, pooled_summary
from brainldm.evaluation._protocols import (
    NETWORKS,
    PROTOCOLS,
    WEIGHT_FILES,
    WEIGHT_URLS,
    MetricSpec,
    Preprocessing,
    get_metrics,
)
from brainldm.evaluation._stats import (
    adjust_pvalues,
    bootstrap_ci,
    compare_conditions,
    save_table,
    seed_spread,
    summarize,
)
from brainldm.evaluation._suite import (
    EvaluationResult,
    concat_results,
    evaluate_images,
    evaluate_reconstructions,
)

__all__ = [
    # Scoring a run without downloaded weights, and its chart.
    "offline_suite",
    "plot_identification",
    "pooled_summary",
    # Identification and distances (numpy).
    "two_way_identification",
    "IdentificationResult",
    "IDENTIFICATION_PROTOCOLS",
    "correlation_distance",
    # Pixel metrics (numpy/scipy).
    "pixcorr",
    "ssim",
    "rgb_to_gray",
    "GRAY_WEIGHTS",
    "prepare_pixel_images",
    # Suites and networks.
    "PROTOCOLS",
    "MetricSpec",
    "Preprocessing",
    "get_metrics",
    "NETWORKS",
    "WEIGHT_FILES",
    "WEIGHT_URLS",
    "CLIP_VIT_L14_CONFIG",
    "build_network",
    "load_network",
    "file_sha256",
    "torchvision_sha256_prefix",
    "CLIP_WEIGHT_NAMES",
    "preprocess_images",
    "extract_network_features",
    # Running a suite.
    "evaluate_images",
    "evaluate_reconstructions",
    "EvaluationResult",
    "concat_results",
    # Reading images.
    "load_reconstructions",
    "load_image_folder",
    "CONDITIONS",
    "INDEX_COLUMNS",
    # Statistics.
    "summarize",
    "seed_spread",
    "bootstrap_ci",
    "compare_conditions",
    "adjust_pvalues",
    "save_table",
]
