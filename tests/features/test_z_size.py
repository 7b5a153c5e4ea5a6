"""The image size for z (``features.z_size``): the paper's 320 px and its 448 px check."""

import json

import numpy as np
import pytest

from brainldm.config import FeaturesConfig, make_run_config
from brainldm.pipeline import STAGES, RunLayout, StaleStageError, plan_run


@pytest.mark.parametrize("value", [320, 448, 64, 8])
def test_z_size_accepts_positive_multiples_of_8(value):
    assert FeaturesConfig(z_size=value).z_size == value


@pytest.mark.parametrize(
    ("value", "allowed"),
    [(100, "a multiple of 8"), (0, "an integer ≥ 8"), (-320, "an integer ≥ 8"),
     (320.5, "an integer ≥ 8"), ("320", "an integer ≥ 8"), (True, "an integer ≥ 8")],
)  # fmt: skip
def test_z_size_errors_name_the_setting_the_value_and_what_is_allowed(value, allowed):
    with pytest.raises(ValueError, match="features.z_size") as info:
        make_run_config("takagi2023", {"features": {"z_size": value}})
    assert repr(value) in str(info.value) and allowed in str(info.value)


def test_the_paper_size_is_the_default_of_every_preset():
    for preset in ("takagi2023", "recommended", "demo"):
        assert make_run_config(preset).features.z_size == 320


def _finish(run_dir, config):
    """The markers of a run that finished every stage with ``config``."""
    run = RunLayout(run_dir)
    for step in plan_run(config, run_dir, STAGES):
        run.stage_dir(step.stage.name).mkdir(parents=True, exist_ok=True)
        run.marker(step.stage.name).write_text(json.dumps(
            {"hash": step.key, "settings": step.settings, "upstream": step.upstream,
             "outputs": {}}))  # fmt: skip


def test_the_features_key_covers_z_size(tmp_path):
    def config(z_size):
        return make_run_config("takagi2023", {"data": {"subjects": (1,)}, "features": {
            "model": "/weights/sd-v1-4.ckpt", "z_size": z_size}})  # fmt: skip

    _finish(tmp_path, config(320))
    assert {step.action for step in plan_run(config(320), tmp_path)} == {"skip"}
    with pytest.raises(StaleStageError, match=r"features.z_size: 320 → 448") as info:
        plan_run(config(448), tmp_path)
    assert str(info.value).startswith("stage(s) features ")
    # every stage that reads z (decode, reconstruct, evaluate, encode, ...) is redone with it
    plan = plan_run(config(448), tmp_path, force=["features"])
    assert [s.stage.name for s in plan if s.action == "redo"] == list(STAGES[1:])


# -- the tiny LDM at 448 px --------------------------------------------------------


@pytest.fixture(scope="module")
def z_448(tiny_ldm):
    from brainldm.features import encode_image_latents

    images = np.random.default_rng(0).integers(0, 255, (1, 425, 425, 3), dtype=np.uint8)
    return encode_image_latents(tiny_ldm, images, size=448)


def test_z_at_448_px_is_4_by_56_by_56_and_gives_zc(tiny_ldm, z_448):
    from brainldm.features import encode_text_embeddings, encode_zc

    assert z_448.shape == (1, 4, 56, 56)
    c = encode_text_embeddings(tiny_ldm, [["a cat"]])
    zc = encode_zc(tiny_ldm, z_448, c, strength=0.5, fractions=(1.0,), num_inference_steps=4,
                   image_size=64)  # fmt: skip
    # the decoded 448 px image is resized to image_size before re-encoding
    assert zc.zc[1.0].shape == (1, 4, 8, 8) and np.isfinite(zc.zc[1.0]).all()


def test_reconstruction_from_a_z_of_448_px(tiny_ldm, z_448, tmp_path):
    import pandas as pd
    from PIL import Image

    from brainldm.config import ReconstructionConfig
    from brainldm.reconstruction import reconstruct

    c = np.random.default_rng(1).standard_normal((1, 77, 32)).astype(np.float32)
    config = ReconstructionConfig(num_inference_steps=4, n_samples=1, image_size=64)
    reconstruct(tiny_ldm, z_448, c, [3], tmp_path, conditions=("zc", "z"), config=config)
    index = pd.read_csv(tmp_path / "index.csv")
    assert len(index) == 2 and set(index.condition) == {"zc", "z"}
    for path in index["path"]:
        assert Image.open(tmp_path / path).size == (64, 64)


def test_extract_features_cli_z_size(tmp_path, capsys, fake_nsd, monkeypatch):
    import brainldm.features
    import brainldm.ldm
    from brainldm.cli import main

    args = ["extract-features", "--nsd-root", str(fake_nsd.root), "--subjects", "2",
            "--model", str(tmp_path / "no-model"), "--features", "z"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "bad"), "--z-size", "100"]) == 1
    err = capsys.readouterr().err
    assert "features.z_size=100 is not valid" in err and "multiple of 8" in err
    assert not (tmp_path / "bad").exists()  # checked before any work
    seen = {}
    monkeypatch.setattr(brainldm.ldm, "load_ldm", lambda *a, **k: None)
    monkeypatch.setattr(brainldm.features, "extract_features",
                        lambda *a, **k: seen.update(k) or {})  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "feat"), "--z-size", "448"]) == 0
    assert seen["z_size"] == 448
    assert main([*args, "--out", str(tmp_path / "feat")]) == 0
    assert seen["z_size"] == 320  # the paper's
