import pytest

pytest.importorskip("diffusers")

from diffusers import DDIMScheduler  # noqa: E402

from brainldm.ldm import SD_V1_CONFIG_DIR  # noqa: E402
from brainldm.ldm._sampling import img2img_timesteps  # noqa: E402


@pytest.fixture
def scheduler():
    return DDIMScheduler.from_pretrained(SD_V1_CONFIG_DIR, subfolder="scheduler")


def test_compvis_timesteps_exact(scheduler):
    """The authors' sampler: noise at 801, denoise 781, 761, ..., 1 (seed_code.md §5)."""
    noise_t, steps = img2img_timesteps(scheduler, 50, 0.8, "compvis")
    assert noise_t == 801
    assert steps == list(range(781, 0, -20))
    assert len(steps) == 40


def test_diffusers_timesteps(scheduler):
    noise_t, steps = img2img_timesteps(scheduler, 50, 0.8, "diffusers")
    assert noise_t == 781 and steps == list(range(781, 0, -20))


def test_full_strength_and_other_grids(scheduler):
    noise_t, steps = img2img_timesteps(scheduler, 50, 1.0, "compvis")
    assert noise_t == 981 and steps[0] == 981 and steps[-1] == 1
    noise_t, steps = img2img_timesteps(scheduler, 10, 0.5, "compvis")
    assert steps == [401, 301, 201, 101, 1] and noise_t == 501


def test_bad_arguments(scheduler):
    with pytest.raises(ValueError, match="convention='ldm' is not valid"):
        img2img_timesteps(scheduler, 50, 0.8, "ldm")
    with pytest.raises(ValueError, match=r"strength must be in \(0, 1\], got 0"):
        img2img_timesteps(scheduler, 50, 0, "compvis")
    with pytest.raises(ValueError, match="runs no step"):
        img2img_timesteps(scheduler, 4, 0.2, "compvis")
