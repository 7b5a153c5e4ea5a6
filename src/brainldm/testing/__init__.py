"""Synthetic data and tiny models for tests, examples and the demo."""

from brainldm.testing._fake_nsd import FakeNSD, write_fake_nsd
from brainldm.testing._fake_stimuli import (
    VOCABULARY,
    FeatureFunction,
    appearance_features,
    semantic_features,
)

__all__ = [
    "FakeNSD",
    "FeatureFunction",
    "VOCABULARY",
    "appearance_features",
    "semantic_features",
    "write_fake_nsd",
]

from brainldm.testing._compvis import to_compvis_state_dict  # noqa: E402
from brainldm.testing._fit import fit_tiny_ldm  # noqa: E402

__all__ += ["to_compvis_state_dict", "fit_tiny_ldm"]
