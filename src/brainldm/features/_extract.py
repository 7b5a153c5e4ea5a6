"""Stimulus → LDM components: z, c, zc and U-Net activations (Takagi & Nishimoto 2023, §3.3-3.5).

Every function takes arrays (images, captions, latents), not NSD paths, and
returns numpy arrays whose first axis follows its input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from brainldm.ldm import (
    TIMESTEP_CONVENTIONS,
    ddim_denoise,
    decode_latents,
    encode_images,
    encode_prompt_embeddings,
    from_uint8,
    img2img_timesteps,
    make_generators,
    randn,
    resize_uint8,
    to_uint8,
)

logger = logging.getLogger(__name__)

#: U-Net layers whose activations :func:`encode_zc` can record by default: two of
#: the down path, the bottleneck, two of the up path (SD v1.x module names).
DEFAULT_UNET_LAYERS = ("down_blocks.1", "down_blocks.2", "mid_block", "up_blocks.1", "up_blocks.2")


def default_unet_layers(unet) -> tuple[str, ...]:
    """Two layers of the down path, the bottleneck and two of the up path, for any U-Net.

    For SD v1.x (4 down blocks) this is :data:`DEFAULT_UNET_LAYERS`; smaller U-Nets get
    their own blocks.
    """
    n_down, n_up = len(unet.down_blocks), len(unet.up_blocks)
    down = [f"down_blocks.{i}" for i in ((1, 2) if n_down >= 3 else range(n_down))]
    up = [f"up_blocks.{i}" for i in ((1, 2) if n_up >= 3 else range(n_up))]
    return (*down, "mid_block", *up)


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def encode_image_latents(
    ldm,
    images: np.ndarray,
    size: int = 320,
    posterior: str = "mean",
    seeds: Sequence[int] | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> np.ndarray:
    """z: the VAE latent of each image, resized to ``size`` (LANCZOS), × scaling factor.

    Parameters
    ----------
    ldm : LatentDiffusion
    images : ndarray of uint8, shape (n_images, H, W, 3)
        Stimuli (425 × 425 in NSD).
    size : int
        Side the image is resized to before encoding (320 in the paper → z of
        4 × 40 × 40 = 6,400 values).
    posterior : {"mean", "sample"}
        The posterior mean, or a sample as the seed code does (needs ``seeds``).
    seeds : sequence of int, optional
        One seed per image for ``posterior="sample"``.
    batch_size : int
    progress : bool

    Returns
    -------
    image_latents : ndarray of float32, shape (n_images, 4, size / 8, size / 8)
    """
    from tqdm.auto import tqdm

    from brainldm._utils import check_option

    check_option("posterior", posterior, ("mean", "sample"))
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 of shape (n_images, H, W, 3), got {images.dtype} "
            f"{images.shape}."
        )
    if posterior == "sample" and (seeds is None or len(seeds) != len(images)):
        raise ValueError("posterior='sample' needs one seed per image (seeds=...).")
    out = []
    for sl in tqdm(list(_batches(len(images), batch_size)), disable=not progress, desc="z"):
        x = from_uint8(resize_uint8(images[sl], size, "lanczos"), ldm.device, ldm.dtype)
        gens = None if posterior == "mean" else make_generators(seeds[sl])
        out.append(encode_images(ldm, x, gens).float().cpu().numpy())
    return np.concatenate(out) if out else np.empty((0,), np.float32)


def encode_text_embeddings(
    ldm, captions: Sequence[Sequence[str]], batch_size: int = 32, progress: bool = False
) -> np.ndarray:
    """c: CLIP ``last_hidden_state`` of every caption of an image, averaged over captions.

    Parameters
    ----------
    ldm : LatentDiffusion
    captions : sequence of sequence of str
        ``captions[i]`` are the captions of image i (COCO: usually 5).
    batch_size : int
        Captions per text-encoder call.
    progress : bool

    Returns
    -------
    text_embeddings : ndarray of float32, shape (n_images, 77, d)
        d = 768 for SD v1.x. All 77 token positions are kept, as in the paper.
    """
    from tqdm.auto import tqdm

    flat = [str(c) for caps in captions for c in caps]
    owner = np.repeat(np.arange(len(captions)), [len(caps) for caps in captions])
    empty = [i for i, caps in enumerate(captions) if len(caps) == 0]
    if empty:
        raise ValueError(f"captions: image(s) {empty[:5]} have no caption.")
    encoded = []
    for sl in tqdm(list(_batches(len(flat), batch_size)), disable=not progress, desc="c"):
        encoded.append(encode_prompt_embeddings(ldm, flat[sl]).float().cpu().numpy())
    per_caption = np.concatenate(encoded)
    sums = np.zeros((len(captions), *per_caption.shape[1:]), dtype=np.float64)
    np.add.at(sums, owner, per_caption)
    return (sums / np.bincount(owner)[:, None, None]).astype(np.float32)


def latents_to_init_latents(
    ldm, image_latents, size: int = 512, posterior: str = "mean", generators: list | None = None
):
    """The paper's bridge from a decoded z to the sampler: 𝒟(z) → uint8 → resize → ℰ.

    z (n, 4, 40, 40) is decoded to a 320-px image (any z of side h: 8h px), quantised
    to uint8 and resized to ``size`` px (PIL bicubic, as the seed code), then
    re-encoded, giving the (n, 4, 64, 64) latent that img2img starts from
    (seed_code.md §5).

    Returns
    -------
    init_latents : torch.Tensor of shape (n, 4, size / 8, size / 8)
    images : ndarray of uint8, shape (n, size, size, 3)
        The resized decoded images (the "z only" reconstruction).
    """
    pixels = to_uint8(decode_latents(ldm, image_latents))
    resized = resize_uint8(pixels, size, "bicubic")
    x = from_uint8(resized, ldm.device, ldm.dtype)
    gens = generators if posterior == "sample" else None
    return encode_images(ldm, x, gens), resized


@dataclass(frozen=True)
class ZCFeatures:
    """What :func:`encode_zc` records.

    Attributes
    ----------
    zc : dict of float to ndarray of shape (n_images, 4, 64, 64)
        The latent after denoising with c, at each requested fraction of the
        denoising steps (1.0 = the end).
    unet : dict of (str, float) to ndarray
        Activations of each U-Net layer at each fraction: (n_images, n_channels)
        when pooled, else (n_images, n_channels × h × w).
    strength : float
    timesteps : list of int
        The denoising timesteps that were run.
    record_steps : dict of float to int
        Steps run (of ``len(timesteps)``) when each fraction was recorded
        (:func:`denoising_record_steps`).
    """

    zc: dict
    unet: dict
    strength: float
    timesteps: list
    record_steps: dict = field(default_factory=dict)


def denoising_record_steps(fractions: Sequence[float], n_steps: int) -> list[int]:
    """How many denoising steps have run when each stage (a fraction of the steps) is recorded.

    A stage ``f`` is recorded after step ``⌈f · n_steps⌉`` (counting from 1): the
    first step by which at least the fraction ``f`` of the steps has run. The
    product is computed exactly on the decimal value of ``f`` (``0.2 · 25`` is 5,
    not 5.000000000000001 → 6), never rounded half to even (which turned the
    old 25 % / 50 % of 25 steps into 24 % / 48 %).

    Parameters
    ----------
    fractions : sequence of float in (0, 1]
        Denoising stages (Figure 9: 0.2, 0.66, 1.0).
    n_steps : int
        Denoising steps run from the noised latent (``int(strength · 50)``).

    Returns
    -------
    steps : list of int
        One per fraction, in 1 ... ``n_steps``.

    Examples
    --------
    >>> denoising_record_steps((0.2, 0.66, 1.0), 25)
    [5, 17, 25]
    >>> denoising_record_steps((0.2, 0.66, 1.0), 50)
    [10, 33, 50]
    """
    import math
    from fractions import Fraction

    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise ValueError(f"fractions must lie in (0, 1], got {bad}.")
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps!r}.")
    return [max(1, math.ceil(Fraction(repr(float(f))) * n_steps)) for f in fractions]


def encode_zc(
    ldm,
    image_latents: np.ndarray,
    text_embeddings: np.ndarray,
    strength: float = 0.5,
    fractions: Sequence[float] = (0.2, 0.66, 1.0),
    unet_layers: Sequence[str] = (),
    pool: str = "flatten",
    num_inference_steps: int = 50,
    guidance_scale: float = 5.0,
    timesteps: str = "compvis",
    seeds: Sequence[int] | None = None,
    image_size: int = 512,
    batch_size: int = 4,
    progress: bool = False,
) -> ZCFeatures:
    """zc: z noised to a noise level (``strength``) and denoised with c; U-Net activations.

    Parameters
    ----------
    ldm : LatentDiffusion
    image_latents : ndarray of shape (n_images, 4, h, w)
        z, as from :func:`encode_image_latents` (4 × 40 × 40 at 320 px); its
        decoded image is resized to ``image_size`` whatever its size.
    text_embeddings : ndarray of shape (n_images, 77, d)
        c, as from :func:`encode_text_embeddings`.
    strength : float in (0, 1]
        Noise level: the fraction of the DDIM trajectory that is re-run.
    fractions : sequence of float in (0, 1]
        Where to record, as a fraction of the denoising steps run (early, middle,
        late stages of the denoising process); see :func:`denoising_record_steps`.
    unet_layers : sequence of str
        U-Net modules to record with forward hooks (e.g. :data:`DEFAULT_UNET_LAYERS`);
        the conditional branch's output is kept.
    pool : {"mean", "flatten"}
        Spatial mean of each channel, or the whole activation map.
    num_inference_steps, guidance_scale, timesteps
        As in reconstruction (50, 5.0, "compvis").
    seeds : sequence of int, optional
        One seed per image for the forward noise (default 0, 1, 2, ...).
    image_size : int
        Side of the decoded-z image that is re-encoded (512 as in reconstruction).
    batch_size : int
    progress : bool

    Returns
    -------
    features : ZCFeatures
    """
    import torch
    from tqdm.auto import tqdm

    from brainldm._utils import check_option

    check_option("pool", pool, ("mean", "flatten"))
    check_option("timesteps", timesteps, TIMESTEP_CONVENTIONS)
    z = np.asarray(image_latents, dtype=np.float32)
    c = np.asarray(text_embeddings, dtype=np.float32)
    if len(z) != len(c):
        raise ValueError(f"image_latents has {len(z)} rows but text_embeddings has {len(c)}.")
    denoising_record_steps(fractions, 1)  # checks the fractions before any work
    seeds = list(range(len(z))) if seeds is None else list(seeds)
    scheduler = ldm.make_scheduler()
    noise_t, steps = img2img_timesteps(scheduler, num_inference_steps, strength, timesteps)
    # step index (from 0) after which each fraction is recorded
    recorded = denoising_record_steps(fractions, len(steps))
    record_at = {f: n - 1 for f, n in zip(fractions, recorded, strict=True)}
    modules = {name: ldm.unet.get_submodule(name) for name in unet_layers}
    uncond = encode_prompt_embeddings(ldm, [""])
    zc_out: dict = {f: [] for f in fractions}
    unet_out: dict = {(name, f): [] for name in unet_layers for f in fractions}
    for sl in tqdm(list(_batches(len(z), batch_size)), disable=not progress, desc="zc"):
        n = sl.stop - sl.start
        gens = make_generators(seeds[sl])
        zt = torch.from_numpy(z[sl]).to(ldm.device, ldm.dtype)
        init, _ = latents_to_init_latents(ldm, zt, size=image_size)
        noise = randn(tuple(init.shape), gens, ldm.device, ldm.dtype)
        latents = scheduler.add_noise(init, noise, torch.tensor([noise_t]))
        current = {"step": 0}
        captured: dict = {}

        def hook(name):
            def fn(module, inputs, output):
                if current["step"] not in record_at.values():
                    return
                act = output[0] if isinstance(output, tuple) else output
                act = act[-n:]  # conditional half of the guided batch
                act = act.mean(dim=(2, 3)) if pool == "mean" else act.flatten(1)
                captured[(name, current["step"])] = act.float().cpu().numpy()

            return fn

        handles = [m.register_forward_hook(hook(name)) for name, m in modules.items()]

        def on_step(i, t, lat):
            for f, idx in record_at.items():
                if idx == i:
                    zc_out[f].append(lat.float().cpu().numpy())
            current["step"] = i + 1

        try:
            ddim_denoise(
                ldm,
                latents,
                torch.from_numpy(c[sl]).to(ldm.device, ldm.dtype),
                steps,
                scheduler,
                guidance_scale,
                uncond,
                on_step,
            )
        finally:
            for h in handles:
                h.remove()
        for name in unet_layers:
            for f, idx in record_at.items():
                unet_out[(name, f)].append(captured[(name, idx)])
    return ZCFeatures(
        zc={f: np.concatenate(v) for f, v in zc_out.items()},
        unet={k: np.concatenate(v) for k, v in unet_out.items()},
        strength=float(strength),
        timesteps=list(steps),
        record_steps=dict(zip(fractions, recorded, strict=True)),
    )
