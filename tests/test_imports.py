import subprocess
import sys

import pytest

HEAVY = ("torch", "diffusers", "transformers", "torchvision", "matplotlib", "nilearn", "ray", "flask")


@pytest.mark.parametrize(
    "module",
    [
        "brainldm",
        "brainldm.nsd",
        "brainldm.testing",
        "brainldm.cli",
        "brainldm.config",
        "brainldm.ldm",
        "brainldm.features",
        "brainldm.reconstruction",
        "brainldm.encoding",
        "brainldm.evaluation",
        "brainldm.maps",
        "brainldm.pipeline",
        "brainldm.distributed",
        "brainldm.rating",
    ],
)
def test_no_heavy_import(module):
    code = (
        f"import sys, {module}; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"
