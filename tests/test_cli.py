import numpy as np

from brainldm.cli import main
from brainldm.nsd import SubjectSplit


def test_demo_prints_split_sizes(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--subjects", "1,2", "--sessions", "3"]) == 0
    out = capsys.readouterr().out
    assert "synthetic NSD written to" in out
    files = sorted((tmp_path / "prepared").glob("subj0*_split-takagi2023_*.h5"))
    assert len(files) == 2
    split = SubjectSplit.load(files[0])
    assert f"train {len(split.train_nsd_ids)} trials, test {len(split.test_nsd_ids)} images" in out
    assert split.summary() in out


def test_simulate_then_prepare(tmp_path, capsys):
    root = tmp_path / "nsd"
    assert main(["simulate", str(root), "--subjects", "1,5", "--sessions", "2"]) == 0
    assert main(["prepare", "--nsd-root", str(root), "--subjects", "5", "--out",
                 str(tmp_path / "out"), "--rois", "early,midventral", "--split", "modern"]) == 0
    out = capsys.readouterr().out
    assert "subj05: 2 sessions (modern)" in out
    (path,) = (tmp_path / "out").glob("subj05_*.h5")
    split = SubjectSplit.load(path)
    assert split.rois == ("early", "midventral")
    assert np.isfinite(split.train_betas["early"]).all()


def test_errors_are_one_line(tmp_path, capsys):
    code = main(["prepare", "--nsd-root", str(tmp_path / "none"), "--subjects", "1",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("brainldm prepare: error: NSD root") and err.count("\n") == 1
