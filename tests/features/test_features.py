import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402

from brainldm.features import (  # noqa: E402
    FeatureStore,
    encode_image_latents,
    encode_text_embeddings,
    encode_zc,
    fill_store,
)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (3, 425, 425, 3), dtype=np.uint8)
    return base


def test_z_equals_direct_vae_call(tiny_ldm, images):
    z = encode_image_latents(tiny_ldm, images, batch_size=2)
    assert z.shape == (3, 4, 40, 40) and z.dtype == np.float32
    pil = Image.fromarray(images[1]).resize((320, 320), Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.array(pil)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.inference_mode():
        direct = tiny_ldm.vae.encode(x).latent_dist.mean * 0.18215
    np.testing.assert_allclose(z[1], direct[0].numpy(), rtol=1e-4, atol=1e-5)


def test_z_posterior_sample(tiny_ldm, images):
    mean = encode_image_latents(tiny_ldm, images[:2])
    a = encode_image_latents(tiny_ldm, images[:2], posterior="sample", seeds=[1, 2])
    b = encode_image_latents(tiny_ldm, images[:2], posterior="sample", seeds=[1, 2], batch_size=1)
    c = encode_image_latents(tiny_ldm, images[:2], posterior="sample", seeds=[1, 3])
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=5e-5)  # batch 2 vs 1: float32 kernels
    assert not np.allclose(a[1], c[1]) and np.allclose(a[0], c[0], atol=1e-5)
    # reference: mean + std * N(0, 1) drawn from torch.Generator(seed), × scaling factor
    pil = Image.fromarray(images[0]).resize((320, 320), Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.array(pil)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.inference_mode():
        dist = tiny_ldm.vae.encode(x).latent_dist
    eps = torch.randn((1, 4, 40, 40), generator=torch.Generator().manual_seed(1))
    expected = ((dist.mean + dist.std * eps) * 0.18215)[0].numpy()
    np.testing.assert_allclose(a[0], expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(a, mean)
    with pytest.raises(ValueError, match="needs one seed per image"):
        encode_image_latents(tiny_ldm, images[:2], posterior="sample")


def test_z_bad_images(tiny_ldm):
    with pytest.raises(ValueError, match=r"images must be uint8 of shape \(n_images, H, W, 3\)"):
        encode_image_latents(tiny_ldm, np.zeros((2, 32, 32), np.uint8))


def test_c_is_the_mean_over_captions(tiny_ldm):
    captions = [["a red circle", "a circle that is red", "red ball"], ["a blue square"]]
    c = encode_text_embeddings(tiny_ldm, captions, batch_size=2)
    assert c.shape == (2, 77, 32)
    tok = tiny_ldm.tokenizer(captions[0], padding="max_length", max_length=77, return_tensors="pt")
    with torch.inference_mode():
        each = tiny_ldm.text_encoder(tok.input_ids).last_hidden_state.numpy()
    np.testing.assert_allclose(c[0], each.mean(axis=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"image\(s\) \[1\] have no caption"):
        encode_text_embeddings(tiny_ldm, [["x"], []])


def test_zc_and_unet_hooks(tiny_ldm, images):
    z = encode_image_latents(tiny_ldm, images)
    c = encode_text_embeddings(tiny_ldm, [["a cat"], ["a dog"], ["a car"]])
    layers = ["down_blocks.1", "mid_block", "up_blocks.0"]
    feats = encode_zc(
        tiny_ldm, z, c, strength=0.6, fractions=(0.5, 1.0), unet_layers=layers, pool="mean",
        num_inference_steps=10, batch_size=2,
    )  # fmt: skip
    assert feats.timesteps == [501, 401, 301, 201, 101, 1]
    assert feats.zc[1.0].shape == (3, 4, 64, 64)
    assert set(feats.unet) == {(name, f) for name in layers for f in (0.5, 1.0)}
    assert feats.unet[("mid_block", 0.5)].shape == (3, 64)
    # Reference: the same run with hooks written here, step by step.
    from brainldm.features import latents_to_init_latents
    from brainldm.ldm._sampling import encode_prompt_embeddings, make_generators, randn

    scheduler = tiny_ldm.make_scheduler()
    scheduler.set_timesteps(10)
    init, _ = latents_to_init_latents(tiny_ldm, torch.from_numpy(z[2:3]))
    lat = scheduler.add_noise(init, randn((1, 4, 64, 64), make_generators([2]), "cpu",
                                          torch.float32), torch.tensor([601]))  # fmt: skip
    uncond = encode_prompt_embeddings(tiny_ldm, [""])
    ctx = torch.cat([uncond, torch.from_numpy(c[2:3])])
    seen = {}

    def record(module, inputs, output):
        seen[len(seen)] = output[1:].mean(dim=(2, 3)).numpy()

    handle = tiny_ldm.unet.get_submodule("mid_block").register_forward_hook(record)
    try:
        with torch.inference_mode():
            for t in [501, 401, 301, 201, 101, 1]:
                eps = tiny_ldm.unet(torch.cat([lat, lat]), t, encoder_hidden_states=ctx).sample
                eu, ec = eps.chunk(2)
                lat = scheduler.step(eu + 5.0 * (ec - eu), t, lat).prev_sample
                if t == 301:
                    half = lat.numpy()
    finally:
        handle.remove()
    np.testing.assert_allclose(feats.zc[0.5][2], half[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(feats.zc[1.0][2], lat[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(feats.unet[("mid_block", 0.5)][2], seen[2][0], rtol=1e-4, atol=1e-5)
    # flattened maps: the default (the paper reduces whole maps to 6,400 by PCA)
    flat = encode_zc(tiny_ldm, z[:1], c[:1], strength=0.6, fractions=(1.0,),
                     unet_layers=["down_blocks.1"], num_inference_steps=10)  # fmt: skip
    assert flat.unet[("down_blocks.1", 1.0)].shape == (1, 64 * 32 * 32)
    assert flat.record_steps == {1.0: 6}


def test_feature_store_resumes(tmp_path):
    calls = []

    def compute(ids):
        calls.append(list(ids))
        return np.stack([np.full((2, 3), i, np.float32) for i in ids])

    store = FeatureStore(tmp_path, "z", {"model": "abc", "size": 320})
    assert fill_store(store, [5, 3, 5, 9], compute, batch_size=2) == 3
    assert calls == [[5, 3], [9]]
    np.testing.assert_array_equal(store.get([9, 5, 5])[:, 0, 0], [9, 5, 5])
    # an interrupted run leaves only whole entries; a new run computes the rest, in the
    # same fixed batches as an uninterrupted run (whole batches, so the bits match)
    again = FeatureStore(tmp_path, "z", {"model": "abc", "size": 320})
    assert fill_store(again, [3, 9, 11], compute, batch_size=2) == 1 and calls[-1] == [11]
    assert fill_store(again, [3, 4, 9], compute, batch_size=2) == 2 and calls[-1] == [3, 4]
    assert not list((tmp_path / "z").rglob(".tmp-*"))
    assert len(list((tmp_path / "z" / "parts").glob("*.h5"))) == 4  # one file per batch put
    with pytest.raises(ValueError, match=r"other settings.*'model': \('abc', 'xyz'\)"):
        FeatureStore(tmp_path, "z", {"model": "xyz", "size": 320})
    with pytest.raises(KeyError, match=r"no entry for nsd_id\(s\) \[6\]"):
        again.get([3, 6])
