"""Ridge regression engine shared by the decoders (brain -> z, c) and the encoders.

scikit-learn estimators with exact K-fold choice of alpha (per target by
default) from a single eigendecomposition, batched over targets, on numpy
or torch (CPU or CUDA). Importing this module does not import torch.
"""

from brainldm.ridge._estimators import (
    DEFAULT_ALPHAS,
    TAKAGI2023_RIDGE,
    BandedRidgeCV,
    Ridge,
    RidgeCV,
    takagi2023_ridge,
)
from brainldm.ridge._folds import grouped_folds
from brainldm.ridge._scoring import correlation_score, r2_score, r2_score_split

# Aliases for the field's two names of the same model.
GroupRidgeCV = BandedRidgeCV

__all__ = [
    # estimators
    "Ridge",
    "RidgeCV",
    "BandedRidgeCV",
    "GroupRidgeCV",
    # paper preset and defaults
    "TAKAGI2023_RIDGE",
    "takagi2023_ridge",
    "DEFAULT_ALPHAS",
    # cross-validation
    "grouped_folds",
    # scoring, per target
    "r2_score",
    "correlation_score",
    "r2_score_split",
]
