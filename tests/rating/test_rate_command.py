"""``brainldm rate``: the wiring in brainldm.cli, and where ``rate results`` sends the report."""

import argparse
import subprocess
import sys

import pytest
from rating_helpers import rate_all_correct

import brainldm.pipeline
from brainldm.cli import main
from brainldm.cli._rate import add_rate_subcommands, find_run_folder, main_rate


def test_results_command(run_dir, capsys):
    rate_all_correct(run_dir)
    assert main_rate(["results", "--run", str(run_dir), "--out", str(run_dir / "res")]) == 0
    out = capsys.readouterr().out
    assert "accuracy 1.000" in out and (run_dir / "res" / "rating_tests.csv").is_file()
    assert "report updated" not in out  # not inside a pipeline run


def test_results_without_database_is_a_one_line_error(tmp_path, capsys):
    assert main_rate(["results", "--run", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("brainldm rate results: error: db_path=") and err.count("\n") == 1


def test_add_rate_subcommands():
    parser = argparse.ArgumentParser(prog="brainldm")
    add_rate_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["rate", "serve", "--run", "d", "--samples", "all", "--raters", "a,b"])
    assert (args.command, args.rate_command, args.run) == ("rate", "serve", "d")
    assert args.samples is None and args.raters == ["a", "b"] and args.host == "127.0.0.1"
    assert callable(args.func)
    args = parser.parse_args(["rate", "results", "--run", "d"])
    assert args.rate_command == "results" and args.db is None and args.pipeline_run is None
    with pytest.raises(SystemExit):
        parser.parse_args(["rate", "serve", "--run", "d", "--samples", "0"])


def test_find_run_folder(tmp_path):
    folder = tmp_path / "run" / "reconstruct" / "subj01"
    folder.mkdir(parents=True)
    assert find_run_folder(folder) is None
    (tmp_path / "run" / "config.toml").write_text('preset = "demo"\n')
    assert find_run_folder(folder) == tmp_path / "run"
    assert find_run_folder(folder, tmp_path / "run") == tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="not a pipeline run folder: it has no config"):
        find_run_folder(folder, tmp_path)


@pytest.fixture
def refreshed(monkeypatch):
    calls = []

    def refresh_report(run_dir):
        calls.append(run_dir)
        return run_dir / "report" / "report.html"

    monkeypatch.setattr(brainldm.pipeline, "refresh_report", refresh_report)
    return calls


def test_results_refresh_the_report_of_the_run(tmp_path, run_dir, refreshed, capsys):
    # A pipeline run: RUN/config.toml, the reconstructions deeper down.
    run = tmp_path / "pipeline"
    folder = run / "reconstruct" / "subj01"
    folder.parent.mkdir(parents=True)
    run_dir.rename(folder)
    (run / "config.toml").write_text('preset = "demo"\n')
    rate_all_correct(folder)
    assert main(["rate", "results", "--run", str(folder)]) == 0
    assert refreshed == [run]
    assert f"report updated: {run / 'report'}" in capsys.readouterr().out
    # Results written elsewhere are not the report's: no refresh.
    assert main(["rate", "results", "--run", str(folder), "--out", str(tmp_path / "o")]) == 0
    assert len(refreshed) == 1


def test_results_with_an_explicit_run_folder(tmp_path, run_dir, refreshed, capsys):
    rate_all_correct(run_dir)
    other = tmp_path / "elsewhere"
    other.mkdir()
    code = main_rate(["results", "--run", str(run_dir), "--pipeline-run", str(other)])
    assert code == 1 and "not a pipeline run folder" in capsys.readouterr().err
    assert not (run_dir / "rating" / "rating_results.json").exists()  # failed before writing
    (other / "config.toml").write_text('preset = "demo"\n')
    assert main_rate(["results", "--run", str(run_dir), "--pipeline-run", str(other)]) == 0
    assert refreshed == [other]


def test_python_m_brainldm_rating_points_to_the_command():
    out = subprocess.run([sys.executable, "-m", "brainldm.rating", "serve", "--run", "d"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and out.stdout == ""
    assert "run `brainldm rate serve --run d` instead" in out.stderr


def test_rating_imports_no_cli_or_pipeline():
    code = (
        "import sys, brainldm.rating; "
        "print(','.join(m for m in sys.modules if m.startswith(('brainldm.cli', "
        "'brainldm.pipeline'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
