"""Decoded (z, c) → images: z+c (the paper), z-only and c-only controls."""

from brainldm.config import ReconstructionConfig
from brainldm.reconstruction._reconstruct import (
    CONDITIONS,
    INDEX_COLUMNS,
    INDEX_FILE,
    ORIGINALS_DIR,
    RATING_DIR,
    RATING_RESULTS_FILE,
    check_reconstruction_inputs,
    generate,
    img2img,
    original_path,
    png_path,
    posterior_seed,
    reconstruct,
    sample_seed,
    samples_per_image,
    txt2img,
    write_originals,
)
from brainldm.reconstruction._sharded import finalize_reconstruction, run_reconstruction

__all__ = [
    "ReconstructionConfig",
    "CONDITIONS",
    "INDEX_COLUMNS",
    "reconstruct",
    "run_reconstruction",
    "finalize_reconstruction",
    "generate",
    "img2img",
    "txt2img",
    "sample_seed",
    "posterior_seed",
    "samples_per_image",
    # the reconstruction folder
    "INDEX_FILE",
    "ORIGINALS_DIR",
    "RATING_DIR",
    "RATING_RESULTS_FILE",
    "png_path",
    "original_path",
    "write_originals",
    "check_reconstruction_inputs",
]
