"""The shipped demo LDM: trained on synthetic stimuli, its true z and c reconstruct the image."""

import fnmatch
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

REPO = Path(__file__).resolve().parents[2]


def test_shipped_weights_are_package_data():
    from brainldm.testing import DEMO_LDM_DIR

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["brainldm"]  # fmt: skip
    files = [p.relative_to(DEMO_LDM_DIR.parents[1]).as_posix()
             for p in DEMO_LDM_DIR.rglob("*") if p.is_file()]  # fmt: skip
    assert len(files) >= 7  # configs and weights of vae, unet, text_encoder; scheduler; record
    for name in files:
        assert any(fnmatch.fnmatch(name, pat) for pat in patterns), name
    size = sum(p.stat().st_size for p in DEMO_LDM_DIR.rglob("*") if p.is_file())
    assert size < 10e6


def test_oracle_reconstructions_are_the_original_objects():
    """z + c of unseen synthetic stimuli, at the demo's settings, redraw the images.

    The shipped weights reach a mean PixCorr of 0.83 on these six (a random tiny
    LDM: about 0); the demo run itself is held to the goal of 0.8 over its test
    images (tests/test_pipeline.py).
    """
    from brainldm.config import make_run_config
    from brainldm.evaluation import pixcorr
    from brainldm.evaluation._images import prepare_pixel_images
    from brainldm.features import encode_image_latents, encode_text_embeddings
    from brainldm.reconstruction import generate
    from brainldm.testing import draw_stimuli, load_demo_ldm

    ldm = load_demo_ldm()
    config = make_run_config("demo").reconstruction
    # the training set is drawn with seed 1: these are new images
    images, captions = draw_stimuli(6, 96, random_state=2023)
    z = encode_image_latents(ldm, images, size=320, posterior="mean")
    c = encode_text_embeddings(ldm, captions)
    recons = np.zeros((len(images), config.n_samples, config.image_size, config.image_size, 3),
                      np.uint8)  # fmt: skip
    for batch in generate(ldm, z, c, range(len(images)), "zc", config):
        for row, sample, _, image in batch:
            recons[row, sample] = image
    r = pixcorr(prepare_pixel_images(images, "mindeye"), prepare_pixel_images(recons, "mindeye"))
    assert r.mean() >= 0.75, r  # 0.83 with the shipped weights


def test_training_is_seeded():
    import torch

    from brainldm.testing import train_demo_ldm

    options = dict(n_images=12, stimulus_size=64, image_size=64, vae_steps=2, vae_batch_size=2,
                   vae_sizes=(64, 96), unet_steps=3, unet_batch_size=4, seed=5)  # fmt: skip
    first, losses = train_demo_ldm(**options)
    second, again = train_demo_ldm(**options)
    assert again == losses and len(losses["vae"]) == 2 and len(losses["unet"]) == 3
    assert first.scaling_factor == second.scaling_factor != 0.18215
    for name in ("vae", "unet"):
        a, b = getattr(first, name).state_dict(), getattr(second, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert not first.unet.training and not any(p.requires_grad for p in first.vae.parameters())
    with pytest.raises(ValueError, match="multiples of 8"):
        train_demo_ldm(**{**options, "vae_crop": 60})


def test_recipe_is_the_one_that_made_the_shipped_weights():
    import json

    from brainldm.testing import DEMO_LDM_DIR, DEMO_LDM_RECIPE

    record = json.loads((DEMO_LDM_DIR / "training.json").read_text())["arguments"]
    for key, value in DEMO_LDM_RECIPE.items():
        assert record[key] == value, key
