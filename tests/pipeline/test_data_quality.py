"""The decode stage and the report set decoding accuracy against data quality (ncsnr).

The real prepare, features and decode stages on the synthetic NSD (which ships
ncsnr files computed from its betas), with z at 96 px (the small analogue of the
paper's 448 px check).
"""

import json

import pytest

from brainldm.config import make_run_config
from brainldm.pipeline import RunLayout, run_pipeline


@pytest.fixture(scope="module")
def decoded_run(tmp_path_factory, fake_nsd, tiny_ldm):
    from brainldm.nsd import NSDLayout

    run = tmp_path_factory.mktemp("quality_run")
    config = make_run_config("demo", {
        "data": {"subjects": (1, 2), "nsd_root": str(fake_nsd.root)},
        "features": {"z_size": 96},
        "decoding": {"alphas": (10.0, 1e3)}})  # fmt: skip
    summary = run_pipeline(config, run, layout=NSDLayout(fake_nsd.root), ldm=tiny_ldm,
                           stages=["prepare", "features", "decode", "report"])  # fmt: skip
    return run, summary


def test_decode_records_the_median_ncsnr_of_each_roi(decoded_run):
    from brainldm.decoding import DecodedLatents
    from brainldm.nsd import SubjectSplit

    run, _ = decoded_run
    layout = RunLayout(run)
    decode = json.loads(layout.marker("decode").read_text())["outputs"]
    prepare = json.loads(layout.marker("prepare").read_text())["outputs"]
    for subject in ("1", "2"):
        split = SubjectSplit.load(layout.prepared_dir() / prepare[f"{subject}/decoding"])
        quality = decode[subject]["median_ncsnr"]
        assert quality == {
            "image_latents": pytest.approx(split.median_ncsnr("early")),
            "text_embeddings": pytest.approx(split.median_ncsnr("ventral")),
        }
        assert min(quality.values()) > 0.5  # the planted signal is there
        assert set(decode[subject]["per_image_r"]) == set(quality)
        # z of 96 px: decoded as 4 × 12 × 12, the size the features stage stored
        decoded = DecodedLatents.load(layout.decoded(int(subject)))
        assert decoded.image_latents.shape == (len(split.test_nsd_ids), 4, 12, 12)
    marker = json.loads(layout.marker("features").read_text())
    assert marker["settings"]["features.z_size"] == 96
    assert (layout.stage_dir("decode") / "data_quality.png").exists()  # two subjects


def test_the_report_has_the_data_quality_table(decoded_run):
    run, _ = decoded_run
    page = RunLayout(run).report().read_text()
    assert "Decoding accuracy against data quality" in page
    assert "median ncsnr (z ROI)" in page and "c decoding r" in page
    assert "Decoding r against the median ncsnr of the ROI" in page  # the scatter


def test_the_report_says_when_the_quality_was_not_recorded(tmp_path):
    """A decode stage that finished before ncsnr was recorded, or without NSD's file."""
    from brainldm.pipeline._report import Report
    from brainldm.pipeline._sections import ReportInputs, _decoding

    decode = {
        "1": {"per_image_r": {"image_latents": 0.31, "text_embeddings": 0.12}},
        "2": {
            "per_image_r": {"image_latents": 0.25, "text_embeddings": 0.1},
            "median_ncsnr": {"image_latents": None, "text_embeddings": 0.4},
        },
    }
    report = Report()
    _decoding(report, ReportInputs(RunLayout(tmp_path), {"decode": decode}, False, 2))
    page = report.html()
    assert page.count("not recorded") == 4  # 3 cells and the explanation
    assert "0.400" in page and "<img" not in page
