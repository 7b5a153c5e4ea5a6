"""The run config: presets build, round-trip through TOML, and every value is checked."""

import dataclasses

import numpy as np
import pytest

from brainldm._utils import check_number
from brainldm.config import (
    PRESETS,
    ReconstructionConfig,
    RunConfig,
    load_run_config,
    make_run_config,
    run_config_to_toml,
)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_build_and_round_trip(preset, tmp_path):
    config = make_run_config(preset)
    path = tmp_path / "config.toml"
    path.write_text(run_config_to_toml(config))
    assert load_run_config(path) == config
    # lists from TOML become tuples, so configs compare and hash alike
    assert isinstance(config.data.subjects, tuple) and isinstance(config.decoding.alphas, tuple)


def test_every_field_of_every_section_is_checked():
    for section in dataclasses.fields(RunConfig):
        if section.name == "preset":
            continue
        cls = type(getattr(RunConfig(), section.name))
        assert set(cls._checks) == {f.name for f in dataclasses.fields(cls)}, cls.__name__


def test_checks_run_on_direct_construction_and_replace():
    with pytest.raises(ValueError, match=r"reconstruction\.n_samples=0 is not valid"):
        ReconstructionConfig(n_samples=0)
    config = ReconstructionConfig()
    with pytest.raises(ValueError, match=r"reconstruction\.eta=0\.5 is not supported"):
        dataclasses.replace(config, eta=0.5)
    assert dataclasses.replace(config, guidance_scale=7.5).guidance_scale == 7.5


@pytest.mark.parametrize(
    "value, bounds, ok",
    [
        (3, {}, True), (3.5, {"integer": True}, False), (3.0, {"integer": True}, True),
        (True, {}, False), ("3", {}, False), (None, {}, False), (float("inf"), {}, False),
        (float("nan"), {}, False), (10**400, {}, False), (np.float32(0.5), {"high": 1}, True),
        (np.int64(2), {"low": 1, "integer": True}, True), (np.array([1.0]), {}, False),
        (0, {"low": 0, "low_open": True}, False), (1, {"high": 1, "high_open": True}, False),
        (1, {"high": 1}, True), (-1e-9, {"low": 0}, False),
    ],
)  # fmt: skip
def test_check_number(value, bounds, ok):
    if ok:
        assert check_number("x.y", value, **bounds) == value
    else:
        with pytest.raises(ValueError, match=r"^x\.y=.* is not valid; allowed: "):
            check_number("x.y", value, **bounds)


def test_paper_preset_controls_as_the_paper():
    # science.md M2, M4, L3, L4: the paper's controls and the authors' conversions.
    r = make_run_config("takagi2023").reconstruction
    assert (r.guidance_scale, r.c_only_guidance_scale) == (5.0, 7.5)  # img2img's, txt2img's
    assert r.z_only == "denoise_without_c" and r.n_samples == 5
    assert (r.init_posterior, r.uint8) == ("shared_sample", "truncate")
    with pytest.raises(ValueError, match=r"reconstruction\.z_only='decode' is not valid"):
        ReconstructionConfig(z_only="decode")
    with pytest.raises(ValueError, match=r"reconstruction\.uint8='floor' is not valid"):
        ReconstructionConfig(uint8="floor")
