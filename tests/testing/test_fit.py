"""Fitting the tiny LDM to synthetic stimuli: the VAE learns to invert itself, deterministically."""

import numpy as np
import pytest

pytest.importorskip("diffusers")


def _stimuli(fake_nsd, n=24):
    from brainldm.nsd import load_captions, load_stim_info, load_stimulus_images

    ids = np.unique(fake_nsd.trials[1].nsd_ids)[:n]
    layout = fake_nsd.layout
    return (load_stimulus_images(layout, ids),
            load_captions(layout, ids, stim_info=load_stim_info(layout)))  # fmt: skip


def _vae_error(ldm, images, size=32):
    import torch

    from brainldm.ldm._sampling import decode_latents, encode_images, from_uint8, resize_uint8

    x = from_uint8(resize_uint8(images, size, "lanczos"), "cpu", torch.float32)
    return float(((decode_latents(ldm, encode_images(ldm, x)) - x) ** 2).mean())


def test_fit_reduces_both_losses_and_is_seeded(fake_nsd):
    from brainldm.ldm import make_tiny_ldm
    from brainldm.testing import fit_tiny_ldm

    images, captions = _stimuli(fake_nsd)
    ldm = make_tiny_ldm(seed=0)
    before = _vae_error(ldm, images)
    options = dict(image_size=32, vae_steps=60, unet_steps=40, batch_size=8, seed=3)
    losses = fit_tiny_ldm(ldm, images, captions, **options)
    assert len(losses["vae"]) == 60 and len(losses["unet"]) == 40
    # the random VAE reconstructs nothing; after fitting, its error is a fraction of that
    assert _vae_error(ldm, images) < 0.5 * before
    assert np.mean(losses["unet"][-10:]) < 0.5 * np.mean(losses["unet"][:5])
    # latents are rescaled to unit variance, as SD's 0.18215 does
    from brainldm.features import encode_image_latents

    z = encode_image_latents(ldm, images, size=32)
    assert 0.7 < z.std() < 1.3
    # the same seed gives the same weights; the networks are left in eval mode
    again = make_tiny_ldm(seed=0)
    assert fit_tiny_ldm(again, images, captions, **options) == losses
    assert not ldm.unet.training and not ldm.vae.training
    assert not any(p.requires_grad for p in ldm.unet.parameters())


def test_fit_errors(fake_nsd):
    from brainldm.ldm import make_tiny_ldm
    from brainldm.testing import fit_tiny_ldm

    images, captions = _stimuli(fake_nsd, n=4)
    with pytest.raises(ValueError, match="captions has 3 entries"):
        fit_tiny_ldm(make_tiny_ldm(), images, captions[:3], vae_steps=0, unet_steps=0)
    with pytest.raises(ValueError, match="images must be uint8"):
        fit_tiny_ldm(make_tiny_ldm(), images.astype(float), captions, vae_steps=0, unet_steps=0)
