"""Fixtures shared by every test: an isolated environment and the synthetic NSD."""

from __future__ import annotations

import os
import shutil
import socket
import stat
from pathlib import Path

import pytest

from brainldm.nsd import NSD_ROOT_ENV


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """No test can read a real NSD or reach the network."""
    monkeypatch.setenv(NSD_ROOT_ENV, str(tmp_path_factory.mktemp("empty_nsd_root")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def guard(*args, **kwargs):
        raise RuntimeError("tests must not open network connections")

    monkeypatch.setattr(socket.socket, "connect", guard)


def _make_read_only(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP)


@pytest.fixture(scope="session")
def fake_nsd(tmp_path_factory):
    """Two subjects with 3 and 2 sessions, every format; read-only."""
    from brainldm.testing import write_fake_nsd

    root = tmp_path_factory.mktemp("fake_nsd")
    fake = write_fake_nsd(root, subjects=(1, 2), n_sessions={1: 3, 2: 2}, random_state=0)
    _make_read_only(root)
    return fake


@pytest.fixture(scope="session")
def fake_nsd_40(tmp_path_factory):
    """One subject with NSD's 40 sessions (few trials each), for the split presets."""
    from brainldm.testing import write_fake_nsd

    root = tmp_path_factory.mktemp("fake_nsd_40")
    fake = write_fake_nsd(
        root,
        subjects=(1,),
        n_sessions=40,
        n_design_sessions=40,
        n_trials_per_session=9,
        n_shared=40,
        formats=("hdf5",),
        n_fsaverage_vertices=None,
        random_state=3,
    )
    _make_read_only(root)
    return fake


@pytest.fixture
def fake_nsd_copy(fake_nsd, tmp_path):
    """A writable copy of ``fake_nsd`` for tests that break files."""
    from brainldm.nsd import NSDLayout

    dest = tmp_path / "nsd"
    shutil.copytree(fake_nsd.root, dest)
    for path in dest.rglob("*"):
        if path.is_file():
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return NSDLayout(dest)


@pytest.fixture(scope="session")
def tiny_ldm():
    """A tiny random Stable Diffusion (real CLIP tokenizer), built once."""
    pytest.importorskip("diffusers")
    from brainldm.ldm import make_tiny_ldm

    return make_tiny_ldm(seed=0)
