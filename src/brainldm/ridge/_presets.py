"""Named ridge settings: the default alpha grid and the paper's (seed code's) ridge."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brainldm.ridge._estimators import RidgeCV

#: Default alpha grid of :class:`RidgeCV` and :class:`BandedRidgeCV`: 1 to
#: 1e6, one value per decade. On standardised X the useful alphas scale with
#: n_samples, so wide grids are the norm in fMRI; check ``best_alphas_`` for
#: targets at the edges (logged at INFO).
DEFAULT_ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)

#: The seed code's ridge settings (``codes/utils/ridge.py``; see
#: ``seed_code.md`` §4), as keyword arguments of :class:`RidgeCV`. The seed runs
#: ``make_pipeline(StandardScaler(), himalaya.ridge.RidgeCV(alphas))`` with
#: himalaya's defaults. Use :func:`takagi2023_ridge` to build it.
TAKAGI2023_RIDGE = MappingProxyType(
    {
        # Grid for c and init_latent (z); the seed uses [1e4, 2e4, 4e4] only for
        # its technical-paper targets (blip, vgg, dpt).
        "alphas": (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0),
        # himalaya cv=5 -> sklearn KFold(5) without shuffling: contiguous trial
        # blocks, which leak repeated images across folds (use grouped_folds).
        "cv": 5,
        "alpha_per_target": True,  # himalaya local_alpha=True
        "scoring": "neg_mean_squared_error",  # himalaya l2_neg_loss
        # himalaya fit_intercept=False, and Y is neither centred nor scaled, so
        # the model cannot carry the mean of Y (departs from our default).
        "fit_intercept": False,
        "standardize_X": True,  # StandardScaler() fit on the training trials
        "standardize_Y": False,
        "dtype": "float32",  # the seed feeds float32 arrays to himalaya
    }
)


def takagi2023_ridge(**overrides: Any) -> RidgeCV:
    """Return a :class:`RidgeCV` configured as in the seed code of the paper.

    Takagi & Nishimoto (CVPR 2023) fit their decoders with a scikit-learn
    ``StandardScaler`` followed by himalaya's ``RidgeCV`` with its defaults:
    5-fold unshuffled ``KFold``, one alpha per target picked by the negative
    L2 loss from ``[1e-6, 1e-5, ..., 1]``, **no intercept on uncentred Y**.
    :data:`TAKAGI2023_RIDGE` lists these settings; this function applies
    ``overrides`` on top.

    Two of them are known weaknesses, kept only to reproduce the paper: the
    missing intercept (a target's mean cannot be predicted, e.g. the constant
    BOS-token row of the CLIP embedding), and the unshuffled K-fold that puts
    repeats of one image on both sides of a fold. Our defaults
    (``fit_intercept=True``) and ``cv=grouped_folds(nsd_ids)`` fix them.

    Parameters
    ----------
    **overrides
        Any :class:`RidgeCV` parameter, e.g. ``cv=grouped_folds(nsd_ids)``.

    Returns
    -------
    model : RidgeCV
        Unfitted.

    Examples
    --------
    >>> takagi2023_ridge().fit_intercept
    False
    >>> takagi2023_ridge(backend="torch").backend
    'torch'
    """
    # Imported here: the estimators take their default grid from this module.
    from brainldm.ridge._estimators import RidgeCV

    return RidgeCV(**{**TAKAGI2023_RIDGE, **overrides})
