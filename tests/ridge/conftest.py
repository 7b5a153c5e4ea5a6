"""Guards for the ridge tests: no leaked himalaya backend."""

import sys

import pytest


@pytest.fixture(autouse=True)
def _himalaya_backend_unchanged():
    """Tests compare against himalaya; none may leave its global backend changed."""
    before = sys.modules["himalaya.backend"].get_backend().name if "himalaya.backend" in (
        sys.modules
    ) else "numpy"
    yield
    if "himalaya.backend" in sys.modules:
        assert sys.modules["himalaya.backend"].get_backend().name == before
