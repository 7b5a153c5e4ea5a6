"""Local servers for the fetch tests: moto's S3 and an HTTP server, both on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

_REAL_CONNECT = socket.socket.connect  # before the root conftest's guard replaces it
LOOPBACK = "127.0.0.1"


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Allow connections to 127.0.0.1 (the servers below); every other address still fails."""

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if host != LOOPBACK:
            raise RuntimeError(f"tests may connect to {LOOPBACK} only, not {address!r}")
        return _REAL_CONNECT(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # boto3 looks for credentials even for unsigned clients' config files: keep it local.
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 in server mode on 127.0.0.1; yields its endpoint URL."""
    pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """A signed client of the local server (to upload), with a fresh ``natural-scenes-dataset``."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = "natural-scenes-dataset"
    existing = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
    if bucket in existing:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
    else:
        client.create_bucket(Bucket=bucket)
    return client


class Served:
    """What the HTTP server holds: plain files and Hugging Face repositories."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # path -> content
        self.repos: dict[str, dict[str, bytes]] = {}  # repo id -> {filename: content}
        self.lfs: set[str] = {".safetensors", ".bin", ".zip"}
        self.wrong_hash: set[str] = set()  # "repo/filename" advertised with a wrong hash
        self.gated: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self.drop_after: dict[str, int] = {}  # path -> bytes sent before dropping, once
        self.etags: dict[str, str] = {}  # path -> ETag of a plain file (If-Range honoured)
        self.commit = "0123456789abcdef0123456789abcdef01234567"


def _hf_etag(name: str, content: bytes, served: Served, key: str) -> str:
    if any(name.endswith(s) for s in served.lfs):
        digest = hashlib.sha256(content).hexdigest()
    else:  # git blob id, as the Hub gives for files not in LFS
        digest = hashlib.sha1(f"blob {len(content)}\0".encode() + content).hexdigest()
    if key in served.wrong_hash:
        digest = ("0" * len(digest))
    return digest


def _handler(served: Served):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, head: bool) -> None:
            path = self.path.split("?")[0]
            served.requests.append((self.command, path, self.headers.get("Range")))
            headers: dict[str, str] = {}
            parts = path.strip("/").split("/")
            if "resolve" in parts:  # /{org}/{name}/resolve/{revision}/{filename}
                i = parts.index("resolve")
                repo, name = "/".join(parts[:i]), "/".join(parts[i + 2:])
                if repo in served.gated:
                    self.send_response(403)
                    body = b'{"error": "Access to model is restricted, you must accept the terms"}'
                    self.send_header("X-Error-Code", "GatedRepo")
                    self.send_header("X-Error-Message", "Access restricted: accept the terms")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if not head:
                        self.wfile.write(body)
                    return
                content = served.repos.get(repo, {}).get(name)
                if content is not None:
                    etag = _hf_etag(name, content, served, f"{repo}/{name}")
                    headers = {"X-Repo-Commit": served.commit, "ETag": f'"{etag}"',
                               "X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(content))}
            else:
                content = served.files.get(path)
                if path in served.etags:
                    headers = {"ETag": served.etags[path]}
            if content is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, status = 0, 200
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if if_range is not None and if_range != headers.get("ETag"):
                rng = None  # another version than the client's: the whole file (RFC 9110)
            if rng and rng.startswith("bytes=") and rng[6:].endswith("-"):
                start, status = int(rng[6:-1]), 206
            body = content[start:]
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                end = len(content) - 1
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(content)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head and path in served.drop_after:  # a dropped connection, once
                self.wfile.write(body[: served.drop_after.pop(path)])
                self.wfile.flush()
                self.close_connection = True
                return
            if not head:
                self.wfile.write(body)

        def do_HEAD(self):  # noqa: N802
            self._send(head=True)

        def do_GET(self):  # noqa: N802
            self._send(head=False)

    return Handler


@pytest.fixture
def http_server():
    """A threading HTTP server on 127.0.0.1 with ``Range`` support; yields (base URL, Served)."""
    served = Served()
    server = ThreadingHTTPServer((LOOPBACK, 0), _handler(served))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOOPBACK}:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()
    thread.join()
