"""Decoded (z, c) → images: z+c (the paper), z-only and c-only controls."""

from brainldm.config import ReconstructionConfig
from brainldm.reconstruction._reconstruct import (
    CONDITIONS,
    INDEX_COLUMNS,
    generate,
    img2img,
    reconstruct,
    sample_seed,
    txt2img,
)

__all__ = [
    "ReconstructionConfig",
    "CONDITIONS",
    "INDEX_COLUMNS",
    "reconstruct",
    "generate",
    "img2img",
    "txt2img",
    "sample_seed",
]
