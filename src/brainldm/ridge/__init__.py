"""Ridge regression engine shared by the decoders (brain -> z, c) and the encoders.

scikit-learn estimators with exact K-fold choice of alpha (per target by
default) from a single eigendecomposition, batched over targets, on numpy
or torch (CPU or CUDA). Importing this package imports neither torch nor
scikit-learn: the estimators are loaded when first used, so the named settings
(:data:`TAKAGI2023_RIDGE`, :data:`DEFAULT_ALPHAS`) are cheap to read, e.g. for
the config's defaults.
"""

import importlib

from brainldm.ridge._presets import DEFAULT_ALPHAS, TAKAGI2023_RIDGE, takagi2023_ridge

#: Public name → the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "BandedRidgeCV": "_banded",
    "GroupRidgeCV": "_banded",  # the field's other name for the same model
    "Ridge": "_estimators",
    "RidgeCV": "_estimators",
    "grouped_folds": "_folds",
    "correlation_score": "_scoring",
    "r2_score": "_scoring",
    "r2_score_split": "_scoring",
    "choose_cv_strategy": "_search",
    "IndexedRows": "_targets",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
    value = getattr(module, "BandedRidgeCV" if name == "GroupRidgeCV" else name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "choose_cv_strategy",
    # scoring, per target
    "r2_score",
    "correlation_score",
    "r2_score_split",
    # targets repeated by rows (images shown several times)
    "IndexedRows",
]
