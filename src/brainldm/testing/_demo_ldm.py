"""The demo's tiny LDM: trained once on synthetic stimuli, shipped as package data.

:func:`train_demo_ldm` trains the tiny model (:func:`brainldm.ldm.make_tiny_ldm`'s
architecture, about 2 M parameters) from a fixed seed on images and captions
drawn from the fake NSD's generator (:func:`brainldm.testing.draw_stimuli`): a
coloured shape on a textured background, captions naming colour, shape, place
and background. ``scripts/train_demo_ldm.py`` runs it and writes the weights
to :data:`DEMO_LDM_DIR`; the demo loads them (:func:`load_demo_ldm`) instead of
fitting a model at run time.

The training set is a few thousand images from the generator under a seed of
its own, not the demo's stimuli: the model has to generalise to the demo's
images, as a real LDM to NSD's, instead of memorising them. It is still a tiny
model of a toy world, not Stable Diffusion.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Where the shipped weights lie (a diffusers folder for :func:`brainldm.ldm.load_ldm`).
DEMO_LDM_DIR = Path(__file__).parent / "demo_ldm"

#: The tiny LDM's configs, but with fewer, wider normalisation groups. With 8 groups
#: of 2 channels, the VAE's last GroupNorm keeps little but the sign of each pair's
#: difference and normalises away each image's mean: shapes survive, colours do not.
DEMO_ARCHITECTURE = dict(unet={"norm_num_groups": 4}, vae={"norm_num_groups": 1})

#: Arguments of :func:`train_demo_ldm` that made the shipped weights.
DEMO_LDM_RECIPE = dict(
    n_images=3000,
    stimulus_size=96,
    image_size=128,
    vae_steps=2500,
    vae_batch_size=8,
    vae_edge_fraction=0.5,
    vae_learning_rate=2e-3,
    unet_steps=15000,
    unet_batch_size=16,
    unet_learning_rate=1.5e-3,
    prediction_type="v_prediction",
    seed=0,
)


def load_demo_ldm(device: str = "cpu"):
    """Load the shipped demo LDM (:data:`DEMO_LDM_DIR`), in float32.

    Returns
    -------
    ldm : LatentDiffusion

    Raises
    ------
    FileNotFoundError
        If the weights are missing (run ``scripts/train_demo_ldm.py``).
    """
    from brainldm.ldm import load_ldm

    if not (DEMO_LDM_DIR / "unet").is_dir():
        raise FileNotFoundError(
            f"the demo LDM's weights are not in {DEMO_LDM_DIR}: run scripts/train_demo_ldm.py."
        )
    return load_ldm(DEMO_LDM_DIR, device=device)


def _cosine_lr(step: int, n_steps: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, n_steps - warmup)))


def _train_vae(vae, images, steps, batch_size, crop, sizes, edge_fraction, learning_rate, kl_weight,
               gen, log):  # fmt: skip
    """Fit the VAE to reconstruct random crops of the images at random scales."""
    import torch
    import torch.nn.functional as F

    n = len(images)
    opt = torch.optim.Adam(vae.parameters(), lr=learning_rate)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine_lr(s, steps, 100))
    vae.train().requires_grad_(True)
    losses = []
    for step in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        x = images[idx].permute(0, 3, 1, 2).float() / 127.5 - 1
        # the pipeline encodes 320-px images (z) and 128-px ones (img2img): train on both
        size = sizes[int(torch.randint(0, len(sizes), (), generator=gen))]
        if size != x.shape[-1]:
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
            x = x.clamp(-1, 1)
        top, left = (int(v) for v in torch.randint(0, size - crop + 1, (2,), generator=gen))
        if edge_fraction:  # a random crop of a 320-px image seldom meets its borders
            snap = torch.rand(2, generator=gen) < edge_fraction
            side = torch.randint(0, 2, (2,), generator=gen) * (size - crop)
            top, left = (int(side[k]) if snap[k] else v for k, v in enumerate((top, left)))
        x = x[..., top : top + crop, left : left + crop]
        if torch.rand((), generator=gen) < 0.5:
            x = x.flip(-1)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        kl = 0.5 * (post.mean**2 + post.var - post.logvar - 1).mean()
        loss = F.mse_loss(rec, x) + kl_weight * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        log("VAE", step, steps, losses)
    vae.eval().requires_grad_(False)
    return losses


def _train_unet(unet, z_mean, z_std, c, uncond, alphas, steps, batch_size, learning_rate,
                cfg_dropout, ema_decay, prediction_type, gen, log):  # fmt: skip
    """Fit the U-Net's ε- or v-prediction; its weights end as their moving average."""
    import copy

    import torch
    import torch.nn.functional as F

    n = len(z_mean)
    unet.train().requires_grad_(True)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=learning_rate, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine_lr(s, steps, 200))
    losses = []
    for step in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        # a posterior sample, as img2img's init latent is one
        z0 = z_mean[idx] + z_std[idx] * torch.randn(z_mean[idx].shape, generator=gen)
        t = torch.randint(0, len(alphas), (batch_size,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * z0 + (1 - a).sqrt() * noise
        cond = c[idx].clone()
        cond[torch.rand(batch_size, generator=gen) < cfg_dropout] = uncond
        target = noise if prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * z0
        loss = F.mse_loss(unet(x_t, t, encoder_hidden_states=cond).sample, target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(ema_decay, (1 + step) / (10 + step))  # short warm-up of the average
            for p_ema, p in zip(ema.parameters(), unet.parameters(), strict=True):
                p_ema.lerp_(p, 1 - decay)
        losses.append(loss.item())
        log("U-Net", step, steps, losses)
    unet.load_state_dict(ema.state_dict())
    unet.eval().requires_grad_(False)
    return losses


def train_demo_ldm(
    n_images: int = 3000,
    stimulus_size: int = 96,
    image_size: int = 128,
    vae_steps: int = 1500,
    vae_batch_size: int = 8,
    vae_crop: int = 64,
    vae_sizes: tuple[int, ...] = (96, 128, 128, 192, 320),
    vae_edge_fraction: float = 0.5,
    vae_learning_rate: float = 2e-3,
    kl_weight: float = 1e-4,
    unet_steps: int = 5000,
    unet_batch_size: int = 16,
    unet_learning_rate: float = 1.5e-3,
    cfg_dropout: float = 0.1,
    ema_decay: float = 0.999,
    prediction_type: str = "v_prediction",
    seed: int = 0,
    log_every: int = 0,
):
    """Train the tiny LDM from scratch on synthetic stimuli; seeded and reproducible.

    The text encoder keeps its random weights (c is still a fixed function of the
    caption); the VAE learns to reconstruct the images, then the U-Net learns the
    standard DDPM ε-prediction on their latents, conditioned on the mean c of
    their captions.

    Parameters
    ----------
    n_images : int
        Training images drawn from the fake NSD's generator (seed ``seed + 1``,
        so not the demo's own stimuli).
    stimulus_size : int
        Side the images are drawn at (the demo's stimuli are 96 px).
    image_size : int
        Side of the U-Net's training images (the demo reconstructs at 128 px).
    vae_steps, vae_batch_size : int
    vae_crop : int
        The VAE sees ``vae_crop``-px crops (a multiple of 8) ...
    vae_sizes : tuple of int
        ... of the images resized to one of these sides (drawn per step): the
        pipeline encodes at 320 px (z) and at the reconstructions' size.
    vae_edge_fraction : float
        Probability that a crop is moved to the image's border, on each axis.
    vae_learning_rate, kl_weight : float
        Adam's peak rate (warm-up, cosine decay) and the KL term's weight.
    unet_steps, unet_batch_size : int
    unet_learning_rate : float
        AdamW's peak rate (warm-up, cosine decay).
    cfg_dropout : float
        Fraction of U-Net samples conditioned on the empty prompt instead, so that
        classifier-free guidance has an unconditional model.
    ema_decay : float
        The U-Net's final weights are this exponential moving average of its steps.
    prediction_type : {"v_prediction", "epsilon"}
        What the U-Net predicts (recorded in the model's scheduler config, which
        the DDIM sampler follows). Stable Diffusion v1 predicts ε; a tiny model
        sampled in a few steps from strength 0.8 makes better images predicting
        v = √ᾱ ε − √(1 − ᾱ) x₀, whose errors are not amplified at high noise.
    seed : int
        Seeds the initial weights, the stimuli and a private generator (batches,
        crops, noise, timesteps); no global state is touched.
    log_every : int
        Log the mean loss every this many steps (0: never).

    Returns
    -------
    ldm : LatentDiffusion
        On the CPU, in eval mode; its VAE ``scaling_factor`` makes the latents of
        ``image_size``-px images unit-variance, as SD's 0.18215 does.
    losses : dict of str to list of float
        ``"vae"`` and ``"unet"``: the loss at every step.
    """
    import torch

    from brainldm._utils import check_option, check_positive_int
    from brainldm.features import encode_text_embeddings
    from brainldm.ldm import encode_prompt_embeddings, from_uint8, make_tiny_ldm, resize_uint8
    from brainldm.testing._fake_stimuli import draw_stimuli

    for name, value in (("n_images", n_images), ("image_size", image_size),
                        ("vae_batch_size", vae_batch_size), ("unet_batch_size", unet_batch_size),
                        ("vae_crop", vae_crop)):  # fmt: skip
        check_positive_int(name, value)
    if vae_crop % 8 or image_size % 8 or vae_crop > min(vae_sizes):
        raise ValueError(
            f"vae_crop ({vae_crop}) and image_size ({image_size}) must be multiples of 8, "
            f"and vae_crop at most min(vae_sizes) {vae_sizes}."
        )
    check_option("prediction_type", prediction_type, ("v_prediction", "epsilon"))
    start = time.perf_counter()

    def log(what, step, steps, losses):
        if log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
            logger.info("%s step %d/%d: loss %.4f (%.0f s)", what, step + 1, steps,
                        np.mean(losses[-log_every:]), time.perf_counter() - start)  # fmt: skip

    gen = torch.Generator().manual_seed(seed)
    ldm = make_tiny_ldm(seed=seed, **DEMO_ARCHITECTURE)
    ldm.source = f"tiny LDM trained on synthetic stimuli (train_demo_ldm, seed {seed})"
    images, captions = draw_stimuli(n_images, stimulus_size, random_state=seed + 1)
    losses = {}
    losses["vae"] = _train_vae(ldm.vae, torch.from_numpy(images), vae_steps, vae_batch_size,
                               vae_crop, tuple(vae_sizes), vae_edge_fraction,
                               vae_learning_rate, kl_weight, gen, log)  # fmt: skip

    # The U-Net's data: posterior mean and std of every image at image_size, and c.
    x = from_uint8(resize_uint8(images, image_size, "lanczos"), "cpu", torch.float32) * 2 - 1
    with torch.no_grad():
        posts = [ldm.vae.encode(x[i : i + 64]).latent_dist for i in range(0, len(x), 64)]
    z_mean = torch.cat([p.mean for p in posts])
    z_std = torch.cat([p.std for p in posts])
    ldm.vae.register_to_config(scaling_factor=float(1.0 / z_mean.std()))
    z_mean, z_std = z_mean * ldm.scaling_factor, z_std * ldm.scaling_factor
    c = torch.from_numpy(encode_text_embeddings(ldm, captions))
    uncond = encode_prompt_embeddings(ldm, [""]).float().clone()
    ldm.scheduler_config = {**ldm.scheduler_config, "prediction_type": prediction_type}
    alphas = ldm.make_scheduler().alphas_cumprod.float()
    losses["unet"] = _train_unet(ldm.unet, z_mean, z_std, c, uncond, alphas, unet_steps,
                                 unet_batch_size, unet_learning_rate, cfg_dropout, ema_decay,
                                 prediction_type, gen, log)  # fmt: skip
    logger.info("trained the demo LDM in %.0f s", time.perf_counter() - start)
    return ldm, losses
