"""The README's two set-up commands are what CI runs, and they stay true."""

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _commands():
    spec = importlib.util.spec_from_file_location("rc", REPO / ".ci" / "readme_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.readme_commands(REPO / "README.md")


def test_readme_opens_with_two_commands():
    install, tests = _commands()
    assert "pip install" in install and '"torch==2.14.1" "torchvision==0.29.1"' in install
    assert install.endswith("brainldm demo")
    assert "pytest" in tests
    readme = (REPO / "README.md").read_text()
    assert readme.index("```bash") < readme.index("\n## ")


def test_ci_runs_the_readme_commands():
    ci = (REPO / ".ci" / "run").read_text()
    assert "readme_commands.py README.md" in ci and 'bash -euo pipefail -c "$cmd"' in ci
    assert "pytest" not in ci and "pip install" not in ci  # nothing copied from the README


def test_demo_command_runs(tmp_path):
    """Run the main job of the first command (the part after the install) as written."""
    demo = _commands()[0].split("&&")[-1].strip()
    argv = shlex.split(demo)
    assert Path(argv[0]).name == "brainldm"
    exe = Path(sys.executable).parent / "brainldm"
    env = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning:brainldm"}
    out = subprocess.run(
        [str(exe), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "split sizes: train" in out.stdout
    assert (tmp_path / "brainldm_demo" / "nsd" / "nsddata").is_dir()
