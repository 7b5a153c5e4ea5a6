"""Synthetic data and tiny models for tests, examples and the demo."""

from brainldm.testing._fake_nsd import FakeNSD, write_fake_nsd
from brainldm.testing._fake_stimuli import (
    VOCABULARY,
    FeatureFunction,
    appearance_features,
    draw_stimuli,
    semantic_features,
)

__all__ = [
    "FakeNSD",
    "FeatureFunction",
    "VOCABULARY",
    "appearance_features",
    "draw_stimuli",
    "semantic_features",
    "write_fake_nsd",
]

from brainldm.testing._compvis import to_compvis_state_dict  # noqa: E402
from brainldm.testing._demo_ldm import (  # noqa: E402
    DEMO_LDM_DIR,
    DEMO_LDM_RECIPE,
    load_demo_ldm,
    train_demo_ldm,
)
from brainldm.testing._fit import fit_tiny_ldm  # noqa: E402

__all__ += ["to_compvis_state_dict", "fit_tiny_ldm"]
__all__ += ["DEMO_LDM_DIR", "DEMO_LDM_RECIPE", "load_demo_ldm", "train_demo_ldm"]

from brainldm.testing._fake_surfaces import write_patch, write_subject_surfaces  # noqa: E402

__all__ += ["write_patch", "write_subject_surfaces"]
