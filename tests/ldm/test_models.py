import argparse

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from brainldm.ldm import load_ldm, read_checkpoint, save_ldm  # noqa: E402
from brainldm.testing import to_compvis_state_dict  # noqa: E402


@pytest.fixture(scope="module")
def tiny_folder(tiny_ldm, tmp_path_factory):
    return save_ldm(tiny_ldm, tmp_path_factory.mktemp("tiny_sd"))


def _same_weights(a, b):
    for name in ("unet", "vae", "text_encoder"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), (name, k)


def test_tiny_shapes(tiny_ldm):
    assert tiny_ldm.vae_scale == 8 and tiny_ldm.scaling_factor == pytest.approx(0.18215)
    x = torch.zeros(1, 3, 320, 320)
    assert tiny_ldm.vae.encode(x).latent_dist.mean.shape == (1, 4, 40, 40)


def test_diffusers_folder_roundtrip(tiny_ldm, tiny_folder, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # offline by construction, not by flag
    loaded = load_ldm(tiny_folder)
    _same_weights(tiny_ldm, loaded)
    assert loaded.tokenizer("a photo of a cat").input_ids[1:-1] == [320, 1125, 539, 320, 2368]
    assert loaded.scheduler_config["steps_offset"] == 1
    assert loaded.fingerprint == load_ldm(tiny_folder).fingerprint


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_compvis_single_file(tiny_ldm, tiny_folder, tmp_path, suffix):
    state = to_compvis_state_dict(tiny_ldm)
    assert any(k.startswith("model.diffusion_model.input_blocks.") for k in state)
    path = tmp_path / f"tiny{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "global_step": 7}, path)
    loaded = load_ldm(path, config_dir=tiny_folder)
    _same_weights(tiny_ldm, loaded)
    with torch.inference_mode():
        z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
        c = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
        np.testing.assert_array_equal(
            loaded.unet(z, 11, encoder_hidden_states=c).sample.numpy(),
            tiny_ldm.unet(z, 11, encoder_hidden_states=c).sample.numpy(),
        )


def test_unsafe_pickle_refused_then_allowed(tiny_ldm, tmp_path):
    path = tmp_path / "trainer.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "callbacks": argparse.Namespace(a=1)}, path)
    with pytest.raises(ValueError, match="holds Python objects that safe loading refuses"):
        read_checkpoint(path)
    assert torch.equal(read_checkpoint(path, allow_pickle=True)["w"], torch.ones(2))


def test_not_a_stable_diffusion_checkpoint(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    with pytest.raises(ValueError, match="not a CompVis Stable Diffusion checkpoint"):
        load_ldm(path)


def test_missing_weights_never_download(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(FileNotFoundError, match="not found: give a diffusers folder.*fetch weights"
                       r".*--only sd-v1-4.*Nothing else downloads"):
        load_ldm(tmp_path / "CompVis/stable-diffusion-v1-4")  # a hub id is not fetched
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "vae").mkdir()
    with pytest.raises(FileNotFoundError, match="unet/ is missing"):
        load_ldm(tmp_path / "half")
    with pytest.raises(ValueError, match="unknown suffix '.bin2'"):
        read_checkpoint(_touch(tmp_path / "w.bin2"))


def _touch(path):
    path.write_bytes(b"")
    return path
