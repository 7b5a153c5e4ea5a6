"""The denoising stages of the takagi2023 preset: the DDIM step recorded for each, pinned."""

import pytest

from brainldm.config import make_run_config
from brainldm.features import denoising_record_steps
from brainldm.ldm import img2img_n_steps


def test_preset_stages_are_the_papers_and_their_steps_are_pinned():
    f = make_run_config("takagi2023").features
    r = make_run_config("takagi2023").reconstruction
    assert f.zc_fractions == (0.2, 0.66, 1.0)  # Figure 9: Progress = 20 %, 66 %, 100 %
    steps = {s: img2img_n_steps(r.num_inference_steps, s) for s in f.zc_strengths}
    assert steps == {0.25: 12, 0.5: 25, 0.75: 37}
    # The table of docs/presets.md.
    assert {s: denoising_record_steps(f.zc_fractions, n) for s, n in steps.items()} == {
        0.25: [3, 8, 12],
        0.5: [5, 17, 25],
        0.75: [8, 25, 37],
    }


def test_steps_are_exact_ceilings_not_float_or_half_even_rounding():
    # 0.2 * 25 is 5.000000000000001 in floats: the ceiling of that would be 6.
    assert denoising_record_steps([0.2], 25) == [5]
    # round-half-to-even gave 6 and 12 for 25 % and 50 % of 25 steps (24 %, 48 %).
    assert denoising_record_steps([0.25, 0.5], 25) == [7, 13]
    assert denoising_record_steps([0.3, 0.7, 0.1], 10) == [3, 7, 1]
    assert denoising_record_steps([0.01], 3) == [1]  # never before the first step
    for n in range(1, 60):  # each is the first step by which the fraction has run
        for f in (0.2, 0.25, 0.5, 0.66, 0.75, 1.0):
            (k,) = denoising_record_steps([f], n)
            assert k / n >= f - 1e-12 and (k - 1) / n < f


@pytest.mark.parametrize("bad", [[0.0], [1.5], [-0.2]])
def test_bad_fractions_are_refused(bad):
    with pytest.raises(ValueError, match="fractions must lie in"):
        denoising_record_steps(bad, 25)
