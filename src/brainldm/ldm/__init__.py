"""Stable Diffusion components: local loading, the offline CLIP tokenizer, tiny models."""

from brainldm.ldm._models import (
    SD_V1_CONFIG_DIR,
    LatentDiffusion,
    ldm_loader,
    load_ldm,
    make_sd_v1_architecture,
    make_tiny_ldm,
    read_checkpoint,
    save_ldm,
)
from brainldm.ldm._sampling import (
    TIMESTEP_CONVENTIONS,
    ddim_denoise,
    decode_latents,
    encode_images,
    encode_prompt_embeddings,
    from_uint8,
    img2img_n_steps,
    img2img_timesteps,
    make_generators,
    randn,
    resize_uint8,
    to_uint8,
)
from brainldm.ldm._tokenizer import (
    clip_vocabulary,
    find_clip_bpe_file,
    load_clip_tokenizer,
    write_clip_tokenizer_files,
)

__all__ = [
    # sampling building blocks (DDIM, VAE, prompts, seeded noise)
    "TIMESTEP_CONVENTIONS",
    "ddim_denoise",
    "decode_latents",
    "encode_images",
    "encode_prompt_embeddings",
    "from_uint8",
    "img2img_n_steps",
    "img2img_timesteps",
    "make_generators",
    "randn",
    "resize_uint8",
    "to_uint8",
    "LatentDiffusion",
    "load_ldm",
    "ldm_loader",
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
