"""The run folder's layout and the report object."""

import pytest

from brainldm.pipeline import STAGES, Report, RunLayout


def test_run_layout_paths_and_the_run_containing_a_folder(tmp_path):
    run = RunLayout(tmp_path / "run")
    assert run.decoded(1) == tmp_path / "run" / "decode" / "subj01_decoded.npz"
    assert run.reconstructions(12) == tmp_path / "run" / "reconstruct" / "subj12"
    assert run.oracle(2).name == "subj02_oracle" and run.maps(5).name == "subj05"
    assert run.marker("encode") == tmp_path / "run" / "encode" / ".done.json"
    assert {run.stage_dir(s).parent for s in STAGES} == {tmp_path / "run"}
    run.root.mkdir()
    run.config_toml().write_text('preset = "demo"\n')
    deep = run.reconstructions(1) / "zc"
    deep.mkdir(parents=True)
    assert RunLayout.containing(deep) == RunLayout(run.root.absolute())
    with pytest.raises(FileNotFoundError, match="not inside a brainldm run folder"):
        RunLayout.containing(tmp_path)


def test_rating_results_lie_where_the_rate_command_writes_them(tmp_path):
    """`brainldm rate results` writes under the reconstruction folder; the report reads there."""
    import pandas as pd

    from brainldm.rating import rating_results, write_rating_results
    from brainldm.rating._run import RATING_DIR

    run = RunLayout(tmp_path)
    rows = [{"rater": "r0", "nsd_id": i, "condition": "zc", "correct": bool(i % 2)}
            for i in range(4)]  # fmt: skip
    # summarize_ratings(reconstructions) writes to reconstructions / RATING_DIR
    paths = write_rating_results(rating_results(pd.DataFrame(rows)),
                                 run.reconstructions(1) / RATING_DIR)  # fmt: skip
    assert paths["json"] == run.rating_results(1)


def test_report_sections_escape_text_and_inline_figures(tmp_path):
    from PIL import Image

    png = tmp_path / "f.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(png)
    report = Report("a <title>")
    report.add_section("Decoding", "r < 0.5 & 'z'")
    report.add_table(["a", "<b>"], [[1, "x&y"]])
    report.add_figure(png, "caption")
    report.add_gallery(["id", "image"], [[7, [(png, "alt"), (tmp_path / "none.png", "gone")]]])
    html = report.html()
    assert "<h1>a &lt;title&gt;</h1>" in html and "<h2>Decoding</h2>" in html
    assert "<p>r &lt; 0.5 &amp; 'z'</p>" in html
    assert "<th>&lt;b&gt;</th>" in html and "<td>x&amp;y</td>" in html
    assert html.count("data:image/png;base64,") == 2  # the figure and one gallery image
    path = report.save(tmp_path / "out" / "report.html")
    assert path.read_text() == html
