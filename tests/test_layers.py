"""The package's layers hold (import-linter's contract in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports():
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.skip("import-linter is not installed (it is in the dev extra)")
        exe = Path(found)
    return str(exe)


def test_layers_contract_is_kept():
    out = subprocess.run([_lint_imports()], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_layers_contract_can_fail(tmp_path):
    """An upward import (maps → encoding, peers) is reported as broken."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "src" / "brainldm", src / "brainldm",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    with open(src / "brainldm" / "maps" / "_plotting.py", "a") as fh:
        fh.write("\nfrom brainldm import encoding as _encoding  # noqa\n")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([_lint_imports()], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env=env)  # fmt: skip
    assert out.returncode != 0
    assert "brainldm.maps is not allowed to import brainldm.encoding" in out.stdout
