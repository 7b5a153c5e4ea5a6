"""Stable Diffusion components: local loading, the offline CLIP tokenizer, tiny models."""

from brainldm.ldm._models import (
    SD_V1_CONFIG_DIR,
    LatentDiffusion,
    load_ldm,
    make_sd_v1_architecture,
    make_tiny_ldm,
    read_checkpoint,
    save_ldm,
)
from brainldm.ldm._tokenizer import (
    clip_vocabulary,
    find_clip_bpe_file,
    load_clip_tokenizer,
    write_clip_tokenizer_files,
)

__all__ = [
    "LatentDiffusion",
    "load_ldm",
    "read_checkpoint",
    "save_ldm",
    "make_tiny_ldm",
    "make_sd_v1_architecture",
    "SD_V1_CONFIG_DIR",
    "load_clip_tokenizer",
    "clip_vocabulary",
    "find_clip_bpe_file",
    "write_clip_tokenizer_files",
]
