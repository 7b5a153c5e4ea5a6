import filecmp
import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402

from brainldm.config import ReconstructionConfig  # noqa: E402
from brainldm.ldm._sampling import decode_latents, encode_prompt_embeddings, to_uint8  # noqa: E402
from brainldm.reconstruction import (  # noqa: E402
    generate,
    img2img,
    posterior_seed,
    reconstruct,
    sample_seed,
    txt2img,
)

FAST = ReconstructionConfig(num_inference_steps=10, n_samples=2)


@pytest.fixture(scope="module")
def decoded():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 4, 40, 40)).astype(np.float32) * 0.8
    c = rng.standard_normal((3, 77, 32)).astype(np.float32)
    return z, c, [17, 4, 250]


def _pipeline(tiny_ldm, cls):
    from diffusers import DDIMScheduler

    return cls(
        vae=tiny_ldm.vae, text_encoder=tiny_ldm.text_encoder, tokenizer=tiny_ldm.tokenizer,
        unet=tiny_ldm.unet, scheduler=DDIMScheduler.from_config(tiny_ldm.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip


def test_img2img_equals_diffusers_pipeline(tiny_ldm):
    """timesteps="diffusers": same latents as StableDiffusionImg2ImgPipeline (atol 1e-4)."""
    from diffusers import StableDiffusionImg2ImgPipeline

    g = torch.Generator().manual_seed(3)
    init = torch.randn(1, 4, 64, 64, generator=g)
    c = torch.randn(1, 77, 32, generator=g)
    uncond = encode_prompt_embeddings(tiny_ldm, [""])
    config = ReconstructionConfig(timesteps="diffusers", num_inference_steps=10)
    ours = img2img(tiny_ldm, init, c, [1234], config)
    pipe = _pipeline(tiny_ldm, StableDiffusionImg2ImgPipeline)
    ref = pipe(
        image=init, prompt_embeds=c, negative_prompt_embeds=uncond, strength=0.8,
        num_inference_steps=10, guidance_scale=5.0, eta=0.0,
        generator=torch.Generator().manual_seed(1234), output_type="latent",
    ).images  # fmt: skip
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-4, rtol=1e-4)
    compvis = img2img(tiny_ldm, init, c, [1234], ReconstructionConfig(num_inference_steps=10))
    assert np.abs(compvis.numpy() - ref.numpy()).max() > 1e-3  # noised at 801 vs 781


def test_compvis_img2img_reference_loop(tiny_ldm):
    """"compvis": x_0 noised at t = 801, then DDIM from 781 to 1 (seed_code.md §5)."""
    g = torch.Generator().manual_seed(5)
    init = torch.randn(1, 4, 64, 64, generator=g)
    c = torch.randn(1, 77, 32, generator=g)
    config = ReconstructionConfig(num_inference_steps=50, strength=0.8)
    scheduler = tiny_ldm.make_scheduler()
    scheduler.set_timesteps(50)
    noise = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(9))
    a = scheduler.alphas_cumprod[801]
    lat = a.sqrt() * init + (1 - a).sqrt() * noise
    ctx = torch.cat([encode_prompt_embeddings(tiny_ldm, [""]), c])
    with torch.inference_mode():
        for t in range(781, 0, -20):
            eu, ec = tiny_ldm.unet(torch.cat([lat, lat]), t, encoder_hidden_states=ctx).sample.chunk(2)
            eps = eu + 5.0 * (ec - eu)
            a_t = scheduler.alphas_cumprod[t]
            a_prev = scheduler.alphas_cumprod[t - 20] if t > 1 else scheduler.alphas_cumprod[0]
            x0 = (lat - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            lat = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    ours = img2img(tiny_ldm, init, c, [9], config)
    np.testing.assert_allclose(ours.numpy(), lat.numpy(), atol=1e-4, rtol=1e-4)


def test_c_only_equals_diffusers_txt2img(tiny_ldm):
    from diffusers import StableDiffusionPipeline

    c = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(0))
    uncond = encode_prompt_embeddings(tiny_ldm, [""])
    config = ReconstructionConfig(num_inference_steps=8)
    assert config.c_only_guidance_scale == 7.5  # txt2img's default, not img2img's 5.0
    ours = txt2img(tiny_ldm, c, [11, 12], config)
    pipe = _pipeline(tiny_ldm, StableDiffusionPipeline)
    ref = pipe(
        prompt_embeds=c, negative_prompt_embeds=uncond.expand(2, -1, -1), num_inference_steps=8,
        guidance_scale=7.5, height=512, width=512, output_type="latent",
        generator=[torch.Generator().manual_seed(s) for s in (11, 12)],
    ).images  # fmt: skip
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-4, rtol=1e-4)


def test_sample_seed():
    assert sample_seed(42, 17, 0) == sample_seed(42, 17, 0)
    seeds = {sample_seed(42, i, k) for i in range(50) for k in range(5)}
    assert len(seeds) == 250
    assert sample_seed(42, 17, 0) != sample_seed(43, 17, 0)


def test_conditions_and_index(tiny_ldm, decoded, tmp_path):
    z, c, ids = decoded
    index = reconstruct(tiny_ldm, z, c, ids, tmp_path, config=FAST)
    assert list(index.columns) == ["nsd_id", "condition", "sample", "seed", "path"]
    counts = index.groupby("condition").size().to_dict()
    assert counts == {"zc": 6, "c": 6, "z": 6}  # every condition: n_samples images
    row = index[(index.condition == "zc") & (index.nsd_id == 4) & (index["sample"] == 1)].iloc[0]
    assert row.seed == sample_seed(42, 4, 1) and row.path == "zc/000004_01.png"
    zc = np.asarray(Image.open(tmp_path / row.path))
    assert zc.shape == (512, 512, 3) and zc.dtype == np.uint8
    zonly = np.asarray(Image.open(tmp_path / "z/000004_00.png")).astype(int)
    conly = np.asarray(Image.open(tmp_path / "c/000004_01.png")).astype(int)
    assert np.abs(zc.astype(int) - zonly).mean() > 1 and np.abs(zc.astype(int) - conly).mean() > 1
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["config"]["strength"] == 0.8 and settings["model"] == tiny_ldm.fingerprint


def test_z_only_vae_decode_reading(tiny_ldm, decoded, tmp_path):
    # z_only="vae_decode": decode z, truncate to uint8 (the authors' astype), resize 512
    # bicubic; one deterministic image per test image.
    z, c, ids = decoded
    config = ReconstructionConfig(num_inference_steps=10, n_samples=2, z_only="vae_decode")
    index = reconstruct(tiny_ldm, z, None, ids, tmp_path, conditions=("z",), config=config)
    assert len(index) == 3 and set(index["sample"]) == {0}
    x = decode_latents(tiny_ldm, torch.from_numpy(z[1:2]))
    raw = (x.permute(0, 2, 3, 1).numpy()[0] * 255).clip(0, 255).astype(np.uint8)  # truncates
    ref = np.asarray(Image.fromarray(raw).resize((512, 512), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "z/000004_00.png")), ref)
    rounded = to_uint8(x, "round")[0]
    assert (rounded.astype(int) - raw).min() == 0 and (rounded != raw).mean() > 0.2


def test_z_only_without_c_equals_a_reference_loop_with_empty_embeddings(tiny_ldm, decoded):
    # The paper's z-only control: step (iii) without c. Reference: decode z, truncate,
    # resize, re-encode with the image's one posterior draw, noise at t = 801, then
    # DDIM 781 → 1 with the U-Net seeing the empty prompt only.
    from diffusers.utils.torch_utils import randn_tensor

    z, c, ids = decoded
    config = ReconstructionConfig(n_samples=2)  # the preset's 50-step schedule
    (batch,) = list(generate(tiny_ldm, z[:1], None, ids[:1], "z", config, batch_size=2))
    assert [(i, k) for i, k, _, _ in batch] == [(17, 0), (17, 1)]
    shared = sample_seed(42, 17, 0) + 1  # one posterior draw per image, as the authors
    assert posterior_seed(config, 17, 1) == posterior_seed(config, 17, 0) == shared
    empty = encode_prompt_embeddings(tiny_ldm, [""])
    scheduler = tiny_ldm.make_scheduler()
    scheduler.set_timesteps(50)
    x = decode_latents(tiny_ldm, torch.from_numpy(z[:1]))
    pixels = (x.permute(0, 2, 3, 1).numpy()[0] * 255).clip(0, 255).astype(np.uint8)
    pixels = np.asarray(Image.fromarray(pixels).resize((512, 512), Image.Resampling.BICUBIC))
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        dist = tiny_ldm.vae.encode(x * 2 - 1).latent_dist
    g = torch.Generator().manual_seed(shared)
    init = dist.mean + dist.std * randn_tensor(dist.mean.shape, generator=g)
    init = init * tiny_ldm.scaling_factor
    for k, (_, _, seed, image) in enumerate(batch):
        assert seed == sample_seed(42, 17, k)
        noise = randn_tensor(init.shape, generator=torch.Generator().manual_seed(seed))
        a = scheduler.alphas_cumprod[801]
        lat = a.sqrt() * init + (1 - a).sqrt() * noise
        with torch.inference_mode():
            for t in range(781, 0, -20):
                eps = tiny_ldm.unet(lat, t, encoder_hidden_states=empty).sample
                a_t = scheduler.alphas_cumprod[t]
                a_prev = scheduler.alphas_cumprod[t - 20] if t > 1 else scheduler.alphas_cumprod[0]
                x0 = (lat - (1 - a_t).sqrt() * eps) / a_t.sqrt()
                lat = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        ref = decode_latents(tiny_ldm, lat).permute(0, 2, 3, 1).numpy()[0] * 255
        ref = ref.clip(0, 255).astype(np.uint8)
        diff = np.abs(image.astype(int) - ref)
        assert diff.max() <= 1 and diff.mean() < 0.01
    assert np.abs(batch[0][3].astype(int) - batch[1][3]).mean() > 1  # two samples differ


def test_same_bytes_across_batch_sizes_and_shards(tiny_ldm, decoded, tmp_path):
    z, c, ids = decoded
    config = ReconstructionConfig(num_inference_steps=5, n_samples=2)
    a, b, d = tmp_path / "a", tmp_path / "b", tmp_path / "d"
    reconstruct(tiny_ldm, z, c, ids, a, conditions=("zc", "c"), config=config, batch_size=4)
    reconstruct(tiny_ldm, z[:1], c[:1], ids[:1], b, conditions=("zc", "c"), config=config,
                batch_size=1)  # fmt: skip
    reconstruct(tiny_ldm, z[1:], c[1:], ids[1:], b, conditions=("zc", "c"), config=config,
                batch_size=3)  # fmt: skip
    reconstruct(tiny_ldm, z, c, ids, d, conditions=("zc", "c"), config=config, batch_size=4)
    for path in sorted(a.glob("*/*.png")):
        assert filecmp.cmp(path, b / path.relative_to(a), shallow=False), path
        assert filecmp.cmp(path, d / path.relative_to(a), shallow=False), path
    pd.testing.assert_frame_equal(pd.read_csv(a / "index.csv"), pd.read_csv(b / "index.csv"))
    other = ReconstructionConfig(num_inference_steps=10, n_samples=2, seed=7)
    reconstruct(tiny_ldm, z[:1], c[:1], ids[:1], tmp_path / "e", conditions=("zc",), config=other)
    assert not filecmp.cmp(a / "zc/000017_00.png", tmp_path / "e/zc/000017_00.png", shallow=False)


def test_resume_keeps_existing_images(tiny_ldm, decoded, tmp_path, monkeypatch):
    z, c, ids = decoded
    reconstruct(tiny_ldm, z, c, ids, tmp_path, conditions=("z",), config=FAST)
    first = tmp_path / "z/000017_00.png"
    first.unlink()  # as if the run had stopped before it
    stamp = (tmp_path / "z/000004_00.png").stat().st_mtime_ns
    import brainldm.reconstruction._reconstruct as module

    made = []
    original = module._images_for
    monkeypatch.setattr(module, "_images_for", lambda *a, **k: made.append(1) or original(*a, **k))
    index = reconstruct(tiny_ldm, z, c, ids, tmp_path, conditions=("z",), config=FAST)
    assert len(made) == 1 and first.exists()
    assert (tmp_path / "z/000004_00.png").stat().st_mtime_ns == stamp
    assert len(index) == 6 and not list(tmp_path.rglob(".tmp-*"))
    with pytest.raises(ValueError, match="made with other settings"):
        reconstruct(tiny_ldm, z, c, ids, tmp_path, conditions=("z",),
                    config=ReconstructionConfig(num_inference_steps=12))  # fmt: skip


def test_bad_inputs(tiny_ldm, decoded, tmp_path):
    z, c, ids = decoded
    with pytest.raises(ValueError, match=r"conditions contains unknown value\(s\) 'zz'"):
        reconstruct(tiny_ldm, z, c, ids, tmp_path, conditions=("zz",))
    with pytest.raises(ValueError, match=r"image_latents must have one row per nsd_id \(3\)"):
        reconstruct(tiny_ldm, z[:2], c, ids, tmp_path, conditions=("zc",))
    with pytest.raises(ValueError, match=r"text_embeddings must have one row per nsd_id"):
        reconstruct(tiny_ldm, z, None, ids, tmp_path, conditions=("c",))
    with pytest.raises(ValueError, match="eta=0.5 is not supported"):
        ReconstructionConfig(eta=0.5)
    with pytest.raises(ValueError, match="timesteps='ldm' is not valid"):
        ReconstructionConfig(timesteps="ldm")
    # c-only needs no z
    index = reconstruct(tiny_ldm, None, c[:1], ids[:1], tmp_path / "c_only", conditions=("c",),
                        config=ReconstructionConfig(num_inference_steps=4, n_samples=1))  # fmt: skip
    assert list(index.condition) == ["c"]
