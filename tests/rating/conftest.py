"""Fixtures of the rating tests: a run folder, a localhost-only network guard, servers."""

from __future__ import annotations

import _socket
import ipaddress
import socket

import pytest
from rating_helpers import ServerProcess, write_run

_REAL_CONNECT = _socket.socket.connect


@pytest.fixture
def run_dir(tmp_path):
    root = tmp_path / "run"
    write_run(root)
    return root


@pytest.fixture
def localhost(_isolated, monkeypatch):
    """Allow connections to loopback addresses only (the suite's guard forbids all)."""

    def guard(self, address):
        host = address[0] if isinstance(address, tuple) else address
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise RuntimeError(f"tests may only connect to localhost, not {address!r}")
        return _REAL_CONNECT(self, address)

    monkeypatch.setattr(socket.socket, "connect", guard)


@pytest.fixture
def server_process():
    started = []

    def start(*args, **kwargs):
        server = ServerProcess(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()
