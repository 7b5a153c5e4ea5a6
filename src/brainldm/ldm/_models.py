"""Loading Stable Diffusion from local files, and building tiny or full-size random ones.

:func:`load_ldm` is the only place that reads model weights. It accepts a
diffusers folder (SD v1.x or 2.x) or a single CompVis checkpoint
(``.safetensors`` or ``.ckpt``, SD v1.x), and never downloads: every config it
needs ships with this package (``configs/sd-v1``), and the CLIP tokenizer is
built from the vocabulary file of ``open-clip-torch`` when the folder has none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Published diffusers configs of SD v1.x (CompVis/stable-diffusion-v1-4).
SD_V1_CONFIG_DIR = Path(__file__).parent / "configs" / "sd-v1"


def _read_config(component: str, config_dir: Path = SD_V1_CONFIG_DIR) -> dict:
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    config = json.loads((Path(config_dir) / component / name).read_text())
    return {k: v for k, v in config.items() if not k.startswith("_")}


@dataclass
class LatentDiffusion:
    """The parts of Stable Diffusion that brainldm uses.

    Attributes
    ----------
    vae : diffusers.AutoencoderKL
        The image encoder ℰ and decoder 𝒟.
    unet : diffusers.UNet2DConditionModel
        The denoising U-Net ε_θ.
    text_encoder : transformers.CLIPTextModel
        τ, giving c (77 × 768 for SD v1.x).
    tokenizer : transformers.CLIPTokenizer
    scheduler_config : dict
        Noise schedule (``DDIMScheduler`` config: scaled-linear β 0.00085–0.012,
        1000 steps, ``steps_offset=1`` as in SD v1.x).
    source : str
        Where the weights came from (a path, or a description of random ones).
    fingerprint : str
        Short hash of the weights' source (file hashes, or the seed and configs),
        recorded with every feature and image made with this model.
    """

    vae: Any
    unet: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    source: str
    fingerprint: str
    extra: dict = field(default_factory=dict)

    @property
    def scaling_factor(self) -> float:
        """Latent scaling of the VAE (0.18215 for SD v1.x)."""
        return float(self.vae.config.scaling_factor)

    @property
    def vae_scale(self) -> int:
        """Pixels per latent cell (8 for SD)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def device(self):
        """Device of the U-Net's weights."""
        return next(self.unet.parameters()).device

    @property
    def dtype(self):
        """Dtype of the U-Net's weights."""
        return next(self.unet.parameters()).dtype

    def to(self, device: str | None = None, dtype: Any = None) -> LatentDiffusion:
        """Move every network to ``device``/``dtype``, in place; returns self."""
        for module in (self.vae, self.unet, self.text_encoder):
            if module is None:
                continue
            if device is not None:
                module.to(device)
            if dtype is not None and next(module.parameters()).dtype != dtype:
                module.to(dtype=dtype)
        return self

    def make_scheduler(self):
        """A fresh ``DDIMScheduler`` with this model's noise schedule."""
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.scheduler_config)


def _eval(*modules: Any) -> None:
    for m in modules:
        if m is not None:
            m.eval()
            m.requires_grad_(False)


def _file_fingerprint(paths: list[Path]) -> str:
    from brainldm._utils import files_fingerprint

    return files_fingerprint(paths)


def read_checkpoint(path: str | os.PathLike, allow_pickle: bool = False) -> dict:
    """Read a single-file checkpoint's state dict safely.

    Parameters
    ----------
    path : path-like
        ``.safetensors`` (always safe) or ``.ckpt``/``.pt``/``.pth`` (read with
        ``torch.load(weights_only=True)``).
    allow_pickle : bool
        If the ``.ckpt`` holds Python objects beyond tensors (some training
        checkpoints do), ``weights_only`` loading fails; set True to load it
        anyway, only for files you trust.

    Returns
    -------
    state_dict : dict of str to torch.Tensor
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix not in (".ckpt", ".pt", ".pth", ".bin"):
        raise ValueError(
            f"checkpoint {str(path)!r}: unknown suffix {path.suffix!r}; allowed: "
            "'.safetensors', '.ckpt', '.pt', '.pth', '.bin'."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling error for non-tensor objects
        if not allow_pickle:
            raise ValueError(
                f"checkpoint {str(path)!r} holds Python objects that safe loading refuses "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200]}). Convert it to "
                ".safetensors, or pass allow_pickle=True if you trust the file."
            ) from None
        obj = torch.load(path, map_location="cpu", weights_only=False)
    return obj.get("state_dict", obj) if isinstance(obj, dict) else obj


def _from_compvis_checkpoint(path: Path, allow_pickle: bool, config_dir: Path):
    """Build SD v1.x diffusers modules from a CompVis single-file checkpoint."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    state = read_checkpoint(path, allow_pickle)
    if not any(k.startswith("model.diffusion_model.") for k in state):
        raise ValueError(
            f"{str(path)!r} is not a CompVis Stable Diffusion checkpoint (no "
            "'model.diffusion_model.*' weights); give a diffusers folder instead."
        )
    unet_config, vae_config = _read_config("unet", config_dir), _read_config("vae", config_dir)
    unet = UNet2DConditionModel.from_config(unet_config)
    unet.load_state_dict(convert_ldm_unet_checkpoint(state, unet_config), strict=True)
    vae = AutoencoderKL.from_config(vae_config)
    vae.load_state_dict(convert_ldm_vae_checkpoint(state, vae_config), strict=True)
    text_config = _read_config("text_encoder", config_dir)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    text_state = convert_ldm_clip_checkpoint(state)
    missing, unexpected = text_encoder.load_state_dict(text_state, strict=False)
    # position_ids is a buffer some checkpoints carry and some do not.
    bad = [k for k in (*missing, *unexpected) if not k.endswith("position_ids")]
    if bad:
        raise ValueError(f"{str(path)!r}: text encoder weights do not match SD v1.x: {bad[:5]}")
    return vae, unet, text_encoder


def _call_or_load(model, device: str):
    return model() if callable(model) else load_ldm(model, device=device)


def ldm_loader(model: str | os.PathLike | Callable[[], Any], device: str = "cpu") -> Callable:
    """A picklable ``loader() -> LatentDiffusion``: what each worker runs once.

    Parameters
    ----------
    model : path-like or callable
        Weights for :func:`load_ldm` (an absolute path is kept, so it must exist
        on every node), or already a picklable ``model() -> LatentDiffusion``.
    device : str
        Where :func:`load_ldm` puts the model (ignored for a callable).

    Returns
    -------
    loader : callable
    """
    import functools
    from pathlib import Path

    if not callable(model):
        model = Path(model).expanduser().absolute()
    return functools.partial(_call_or_load, model, device)


def load_ldm(
    path: str | os.PathLike,
    device: str = "cpu",
    dtype: Any = None,
    tokenizer_dir: str | os.PathLike | None = None,
    allow_pickle: bool = False,
    config_dir: str | os.PathLike | None = None,
) -> LatentDiffusion:
    """Load Stable Diffusion from local files; never downloads.

    Parameters
    ----------
    path : path-like
        A diffusers folder (``vae/``, ``unet/``, ``text_encoder/``, optionally
        ``tokenizer/`` and ``scheduler/``), or a CompVis single-file checkpoint
        ``sd-v1-4.ckpt`` / ``.safetensors``.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    dtype : torch.dtype, optional
        Default float32; float16/bfloat16 are for GPUs (slower on CPU).
    tokenizer_dir : path-like, optional
        Tokenizer folder to use instead of the model's own (or of the one built
        from ``open-clip-torch``'s vocabulary).
    allow_pickle : bool
        See :func:`read_checkpoint`.
    config_dir : path-like, optional
        For a single-file checkpoint: a folder with ``unet/``, ``vae/`` and
        ``text_encoder/`` ``config.json`` describing it. Default: SD v1.x's, shipped
        with this package (:data:`SD_V1_CONFIG_DIR`).

    Returns
    -------
    ldm : LatentDiffusion
    """
    import torch

    path = Path(path).expanduser()
    dtype = torch.float32 if dtype is None else dtype
    scheduler_config = _read_config("scheduler")
    if path.is_dir():
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        for sub in ("vae", "unet", "text_encoder"):
            if not (path / sub).is_dir():
                raise FileNotFoundError(
                    f"{str(path)!r} is not a diffusers Stable Diffusion folder: "
                    f"{sub}/ is missing (expected vae/, unet/, text_encoder/)."
                )
        kwargs = {"local_files_only": True}
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae", **kwargs)
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", **kwargs)
        text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", **kwargs)
        sched_file = path / "scheduler" / "scheduler_config.json"
        if sched_file.exists():
            own = json.loads(sched_file.read_text())
            keys = ("beta_start", "beta_end", "beta_schedule", "num_train_timesteps",
                    "steps_offset", "prediction_type", "set_alpha_to_one", "clip_sample")  # fmt: skip
            scheduler_config.update({k: own[k] for k in keys if k in own})
        if tokenizer_dir is None and (path / "tokenizer" / "vocab.json").exists():
            tokenizer_dir = path / "tokenizer"
        files = [p for p in path.rglob("*") if p.is_file() and p.suffix in
                 (".safetensors", ".bin", ".json")]  # fmt: skip
    elif path.is_file():
        config_dir = SD_V1_CONFIG_DIR if config_dir is None else Path(config_dir)
        vae, unet, text_encoder = _from_compvis_checkpoint(path, allow_pickle, config_dir)
        files = [path]
    else:
        raise FileNotFoundError(
            f"Stable Diffusion weights {str(path)!r} not found: give a diffusers folder or "
            "a CompVis checkpoint (sd-v1-4.ckpt / .safetensors); `brainldm fetch weights --to "
            "DIR --only sd-v1-4` downloads the diffusers folder. Nothing else downloads."
        )
    from brainldm.ldm._tokenizer import load_clip_tokenizer

    tokenizer = load_clip_tokenizer(tokenizer_dir)
    _eval(vae, unet, text_encoder)
    ldm = LatentDiffusion(
        vae=vae,
        unet=unet,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler_config=scheduler_config,
        source=str(path),
        fingerprint=_file_fingerprint(files),
    )
    logger.info("loaded Stable Diffusion from %s (%s)", path, ldm.fingerprint)
    return ldm.to(device, dtype)


def _random_ldm(unet_config: dict, vae_config: dict, text_config: dict, seed: int, source: str):
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from brainldm.ldm._tokenizer import load_clip_tokenizer

    # Module initialisers draw from the global generator: seed it inside a fork,
    # so the caller's generator state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(unet_config)
        vae = AutoencoderKL.from_config(vae_config)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    _eval(vae, unet, text_encoder)
    configs = json.dumps([unet_config, vae_config, text_config, seed], sort_keys=True)
    return LatentDiffusion(
        vae=vae,
        unet=unet,
        text_encoder=text_encoder,
        tokenizer=load_clip_tokenizer(),
        scheduler_config=_read_config("scheduler"),
        source=source,
        fingerprint=hashlib.sha256(configs.encode()).hexdigest()[:16],
    )


#: Small configs: same structure as SD v1.x (8× VAE downsampling, cross-attention
#: U-Net, CLIP text encoder with the real 49,408-token vocabulary), ~2 M parameters.
TINY_UNET_CONFIG = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": [32, 64],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
}
TINY_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": [16, 16, 32, 32],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 320,
    "scaling_factor": 0.18215,
}
TINY_TEXT_CONFIG = {
    "vocab_size": 49408,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}


def make_tiny_ldm(
    seed: int = 0, unet: dict | None = None, vae: dict | None = None
) -> LatentDiffusion:
    """A tiny random Stable Diffusion (for tests and the demo), fully offline.

    Same structure and shapes of z as SD v1.x: a 320-px image gives a 4 × 40 × 40
    latent, a 512-px one 4 × 64 × 64; c is 77 × 32 instead of 77 × 768.

    Parameters
    ----------
    seed : int
    unet, vae : dict, optional
        Overrides of :data:`TINY_UNET_CONFIG` / :data:`TINY_VAE_CONFIG`.
    """
    unet_config, vae_config = (
        {**TINY_UNET_CONFIG, **(unet or {})},
        {**TINY_VAE_CONFIG, **(vae or {})},
    )
    return _random_ldm(
        unet_config, vae_config, TINY_TEXT_CONFIG, seed, f"tiny random (seed {seed})"
    )


def make_sd_v1_architecture(seed: int = 0) -> LatentDiffusion:
    """The full-size SD v1.4 architecture (860 M U-Net) with random weights, for benchmarks."""
    return _random_ldm(
        _read_config("unet"),
        _read_config("vae"),
        _read_config("text_encoder"),
        seed,
        f"SD v1.4 architecture, random (seed {seed})",
    )


def save_ldm(ldm: LatentDiffusion, folder: str | os.PathLike) -> Path:
    """Write ``ldm`` as a diffusers folder (vae/, unet/, text_encoder/, tokenizer/, scheduler/)."""
    from brainldm.ldm._tokenizer import write_clip_tokenizer_files

    folder = Path(folder)
    ldm.vae.save_pretrained(folder / "vae")
    ldm.unet.save_pretrained(folder / "unet")
    ldm.text_encoder.save_pretrained(folder / "text_encoder")
    write_clip_tokenizer_files(folder / "tokenizer")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "DDIMScheduler", **ldm.scheduler_config}, indent=2)
    )
    return folder
