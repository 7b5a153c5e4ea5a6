"""The diffusion mechanics shared by feature extraction and reconstruction.

Notation (the paper's, Takagi & Nishimoto 2023, §3.2):

- z: image latent, ℰ(x) × scaling factor (4 × 40 × 40 for a 320-px image);
- c: text embedding, τ(caption) (77 × 768);
- x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε: the forward (noising) process;
- DDIM: deterministic (η = 0) reverse steps, guided by
  ε̂ = ε_θ(x_t, ∅) + s · (ε_θ(x_t, c) − ε_θ(x_t, ∅)), s the guidance scale.

Timestep conventions for img2img with ``strength`` and ``n`` DDIM steps
(seed_code.md §5): the DDIM timesteps are {1, 21, …, 981} for n = 50;
k = int(strength · n) of them are run, from 781 down to 1 for strength 0.8.

- ``"compvis"`` (the authors' sampler): x_0 is noised to the timestep one DDIM
  step *above* the first denoising step (801 for strength 0.8);
- ``"diffusers"`` (``StableDiffusionImg2ImgPipeline``): noised to the first
  denoising step itself (781).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

TimestepConvention = Literal["compvis", "diffusers"]
TIMESTEP_CONVENTIONS = ("compvis", "diffusers")


def img2img_n_steps(num_inference_steps: int, strength: float) -> int:
    """DDIM steps run by img2img from a latent noised to ``strength``.

    ``int(strength · num_inference_steps)``, truncated as the authors' CompVis
    script does (``t_enc = int(strength * ddim_steps)``): 0.8 → 40 of 50.

    Examples
    --------
    >>> [img2img_n_steps(50, s) for s in (0.25, 0.5, 0.75, 0.8)]
    [12, 25, 37, 40]
    """
    return min(int(num_inference_steps * strength), num_inference_steps)


def img2img_timesteps(
    scheduler: Any, num_inference_steps: int, strength: float, convention: str = "compvis"
) -> tuple[int, list[int]]:
    """Noising timestep and denoising timesteps of DDIM img2img.

    Parameters
    ----------
    scheduler : diffusers.DDIMScheduler
        Its ``set_timesteps`` is called.
    num_inference_steps : int
        DDIM steps of a full trajectory (50 in the paper).
    strength : float in (0, 1]
        Fraction of the trajectory that is run (0.8 in the paper).
    convention : {"compvis", "diffusers"}

    Returns
    -------
    noise_timestep : int
        Timestep whose ᾱ noises the initial latent (801 / 781 for 50 steps, 0.8).
    timesteps : list of int
        Denoising timesteps, decreasing (781, 761, …, 1).
    """
    from brainldm._utils import check_option

    check_option("convention", convention, TIMESTEP_CONVENTIONS)
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength!r}.")
    scheduler.set_timesteps(num_inference_steps)
    full = [int(t) for t in scheduler.timesteps]
    n_run = img2img_n_steps(num_inference_steps, strength)
    if n_run < 1:
        raise ValueError(
            f"strength={strength} with num_inference_steps={num_inference_steps} runs no step."
        )
    timesteps = full[num_inference_steps - n_run :]
    if convention == "diffusers" or n_run == num_inference_steps:
        noise_timestep = timesteps[0]
    else:
        noise_timestep = full[num_inference_steps - n_run - 1]
    return noise_timestep, timesteps


def make_generators(seeds: Sequence[int]) -> list:
    """One CPU ``torch.Generator`` per sample, seeded (so noise is batch-independent)."""
    import torch

    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def randn(shape: tuple[int, ...], generators: list, device: Any, dtype: Any):
    """Gaussian noise of ``shape`` (first axis = samples), drawn sample by sample on CPU."""
    from diffusers.utils.torch_utils import randn_tensor

    return randn_tensor(shape, generator=generators, device="cpu", dtype=dtype).to(device)


def decode_latents(ldm: Any, latents: Any):
    """𝒟(z / scaling factor): latents (n, 4, h, w) → images in [0, 1], (n, 3, 8h, 8w)."""
    import torch

    with torch.inference_mode():
        images = ldm.vae.decode(latents / ldm.scaling_factor).sample
    return (images / 2 + 0.5).clamp(0, 1)


def encode_images(ldm: Any, images: Any, generators: list | None = None):
    """ℰ(x) × scaling factor: images in [0, 1], (n, 3, H, W) → latents (n, 4, H/8, W/8).

    With ``generators``, a posterior sample per image (as the seed code); else the
    posterior mean.
    """
    import torch

    with torch.inference_mode():
        dist = ldm.vae.encode(images * 2 - 1).latent_dist
        if generators is None:
            latents = dist.mean
        else:
            latents = dist.mean + dist.std * randn(
                tuple(dist.mean.shape), generators, dist.mean.device, dist.mean.dtype
            )
    return latents * ldm.scaling_factor


def to_uint8(images: Any, rounding: str = "round") -> np.ndarray:
    """Images in [0, 1], (n, 3, H, W) tensor → uint8 array (n, H, W, 3).

    ``rounding="round"`` rounds to the nearest level, as PIL; ``"truncate"``
    drops the fraction, as the authors' ``(255 * x).astype(np.uint8)``
    (every pixel about half a level darker).
    """
    if rounding not in ("round", "truncate"):
        raise ValueError(f"rounding must be 'round' or 'truncate', got {rounding!r}.")
    arr = images.detach().float().cpu().permute(0, 2, 3, 1).numpy() * 255
    arr = arr.round() if rounding == "round" else np.floor(arr)
    return arr.clip(0, 255).astype(np.uint8)


def resize_uint8(images: np.ndarray, size: int, resample: str = "bicubic") -> np.ndarray:
    """Resize uint8 images (n, H, W, 3) to size × size with PIL."""
    from PIL import Image

    method = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}[resample]
    if images.shape[1] == size and images.shape[2] == size:
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), method)) for im in images])


def from_uint8(images: np.ndarray, device: Any, dtype: Any):
    """uint8 (n, H, W, 3) → float tensor in [0, 1], (n, 3, H, W)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return (x.to(dtype=torch.float32) / 255.0).to(device=device, dtype=dtype)


def encode_prompt_embeddings(ldm: Any, prompts: Sequence[str]):
    """τ(prompt): CLIP ``last_hidden_state`` of each prompt, (n, 77, d)."""
    import torch

    tok = ldm.tokenizer(
        list(prompts),
        padding="max_length",
        max_length=ldm.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    with torch.inference_mode():
        return ldm.text_encoder(tok.input_ids.to(ldm.device)).last_hidden_state


def ddim_denoise(
    ldm: Any,
    latents: Any,
    text_embeddings: Any,
    timesteps: Sequence[int],
    scheduler: Any,
    guidance_scale: float = 5.0,
    uncond_embeddings: Any = None,
    callback: Callable[[int, int, Any], None] | None = None,
):
    """Run DDIM (η = 0) reverse steps with classifier-free guidance.

    Parameters
    ----------
    ldm : LatentDiffusion
    latents : torch.Tensor of shape (n, 4, h, w)
        x_t at the first of ``timesteps``.
    text_embeddings : torch.Tensor of shape (n, 77, d)
        c for each sample.
    timesteps : sequence of int
        Decreasing timesteps (from :func:`img2img_timesteps`).
    scheduler : diffusers.DDIMScheduler
        With ``set_timesteps`` already called for the full trajectory.
    guidance_scale : float
        s; 1 disables guidance (no unconditional pass).
    uncond_embeddings : torch.Tensor of shape (1 or n, 77, d), optional
        ∅: the embedding of the empty prompt "" (default, as the seed code).
    callback : callable, optional
        ``callback(step_index, t, latents)`` after each step, latents = x_{t-1}.

    Returns
    -------
    latents : torch.Tensor of shape (n, 4, h, w)
        x_0 estimate after the last step.
    """
    import torch

    n = latents.shape[0]
    guided = guidance_scale != 1.0
    if guided:
        if uncond_embeddings is None:
            uncond_embeddings = encode_prompt_embeddings(ldm, [""])
        uncond = uncond_embeddings.to(text_embeddings.dtype).expand(n, -1, -1)
        context = torch.cat([uncond, text_embeddings])
    else:
        context = text_embeddings
    with torch.inference_mode():
        for i, t in enumerate(timesteps):
            model_in = torch.cat([latents, latents]) if guided else latents
            eps = ldm.unet(model_in, t, encoder_hidden_states=context).sample
            if guided:
                eps_uncond, eps_cond = eps.chunk(2)
                eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
            latents = scheduler.step(eps, t, latents, eta=0.0).prev_sample
            if callback is not None:
                callback(i, int(t), latents)
    return latents
