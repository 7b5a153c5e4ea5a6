"""Fitting a tiny LDM to a few synthetic stimuli, so that the demo's images carry signal.

A tiny LDM with random weights turns any z and c into noise, so its
reconstructions cannot be told apart and every identification score sits at
chance. A minute of fitting on the demo's own images gives the VAE an encoder
that keeps their layout and colours and a decoder that inverts it, and gives
the U-Net a crude ε-prediction (the standard DDPM loss, conditioned on the
captions' c). It is still not Stable Diffusion: it shows that the pipeline
carries a planted signal from voxels to images, not what the method achieves.
"""

from __future__ import annotations

import numpy as np


def fit_tiny_ldm(
    ldm,
    images: np.ndarray,
    captions,
    image_size: int = 128,
    vae_steps: int = 300,
    unet_steps: int = 400,
    batch_size: int = 16,
    learning_rate: float = 2e-3,
    cfg_dropout: float = 0.1,
    seed: int = 0,
):
    """Fit the VAE (reconstruction) and then the U-Net (ε-prediction) of ``ldm``, in place.

    Parameters
    ----------
    ldm : LatentDiffusion
        A small model (e.g. :func:`brainldm.ldm.make_tiny_ldm`); on the CPU.
    images : ndarray of uint8, shape (n_images, H, W, 3)
    captions : sequence of sequence of str
        Captions of each image; the U-Net is conditioned on their mean c.
    image_size : int
        Side the images are resized to for fitting (the reconstructions' size).
    vae_steps, unet_steps : int
        Adam steps of each network.
    batch_size : int
    learning_rate : float
    cfg_dropout : float
        Fraction of U-Net steps conditioned on the empty prompt instead, so that
        classifier-free guidance has an unconditional model.
    seed : int
        Seeds a private generator (batches, noise, timesteps); no global state.

    Returns
    -------
    losses : dict of str to list of float
        ``"vae"`` and ``"unet"``: the loss at every step.

    Notes
    -----
    The VAE's ``scaling_factor`` is reset to 1 / std of the fitted latents, as
    Stable Diffusion's 0.18215 makes its latents unit-variance.
    """
    import torch

    from brainldm._utils import check_positive_int
    from brainldm.features import encode_text_embeddings
    from brainldm.ldm import encode_prompt_embeddings, from_uint8, resize_uint8

    for name, value in (("image_size", image_size), ("batch_size", batch_size)):
        check_positive_int(name, value)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 of shape (n, H, W, 3), got {images.dtype} "
                         f"{images.shape}.")  # fmt: skip
    if len(captions) != len(images):
        raise ValueError(f"captions has {len(captions)} entries but images has {len(images)}.")
    gen = torch.Generator().manual_seed(seed)
    x = from_uint8(resize_uint8(images, image_size, "lanczos"), "cpu", torch.float32) * 2 - 1
    n = len(x)
    losses: dict[str, list[float]] = {"vae": [], "unet": []}

    def batch():
        return torch.randint(0, n, (min(batch_size, n),), generator=gen)

    vae = ldm.vae.train().requires_grad_(True)
    opt = torch.optim.Adam(vae.parameters(), lr=learning_rate)
    for _ in range(vae_steps):
        xb = x[batch()]
        if torch.rand((), generator=gen) < 0.5:  # flips: more images from few
            xb = xb.flip(-1)
        post = vae.encode(xb).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        kl = 0.5 * (post.mean**2 + post.var - post.logvar - 1).mean()
        loss = torch.nn.functional.mse_loss(rec, xb) + 1e-4 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses["vae"].append(loss.item())
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        mean = torch.cat([vae.encode(x[i : i + 32]).latent_dist.mean for i in range(0, n, 32)])
    vae.register_to_config(scaling_factor=float(1.0 / mean.std()))
    z0 = mean * ldm.scaling_factor

    c = torch.from_numpy(encode_text_embeddings(ldm, captions))
    uncond = encode_prompt_embeddings(ldm, [""]).float().clone()
    alphas = ldm.make_scheduler().alphas_cumprod.float()
    unet = ldm.unet.train().requires_grad_(True)
    opt = torch.optim.Adam(unet.parameters(), lr=learning_rate)
    for _ in range(unet_steps):
        idx = batch()
        t = torch.randint(0, len(alphas), (len(idx),), generator=gen)
        noise = torch.randn(z0[idx].shape, generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * z0[idx] + (1 - a).sqrt() * noise
        cond = c[idx].clone()
        drop = torch.rand(len(idx), generator=gen) < cfg_dropout
        cond[drop] = uncond
        pred = unet(x_t, t, encoder_hidden_states=cond).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses["unet"].append(loss.item())
    unet.eval().requires_grad_(False)
    return losses
