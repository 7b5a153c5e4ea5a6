"""The README's two set-up commands are what CI runs, and they stay true."""

import importlib.util
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

# The first command's main job (the demo) runs as written in tests/test_pipeline.py.
