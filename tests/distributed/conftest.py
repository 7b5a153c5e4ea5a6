"""Fixtures for scale-out tests: a tiny model on disk, and a local 2-CPU Ray cluster."""

from __future__ import annotations

import shutil
import tempfile

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny LDM saved as a diffusers folder, so that workers load it from disk."""
    pytest.importorskip("diffusers")
    from brainldm.ldm import make_tiny_ldm, save_ldm

    return save_ldm(make_tiny_ldm(seed=0), tmp_path_factory.mktemp("tiny_ldm"))


@pytest.fixture
def one_thread():
    """torch on one thread, as a 1-CPU Ray worker: CPU results depend on the thread count."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of 2 CPUs: loopback only, no dashboard, its own temp dir."""
    # Short path: Ray's Unix sockets live under it (limit ~107 characters).
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # Ray's "no multi-node clusters" mode (its default on macOS and Windows):
        # every server listens on 127.0.0.1. Read when ray is first imported.
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = pytest.importorskip("ray")
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            _temp_dir=temp_dir,
            log_to_driver=False,
            configure_logging=False,
        )
        try:
            yield ray
        finally:
            ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)
