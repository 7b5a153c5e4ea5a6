"""Plain HTTP(S) downloads with ``Range`` resume, through the standard library."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from brainldm.fetch._common import (
    FetchError,
    Transfer,
    chunk_size,
    part_path,
    read_chunks,
    refuse,
    write_stream,
)

_TIMEOUT = 60


def _open(url: str, method: str = "GET", headers: dict | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        return urllib.request.urlopen(request, timeout=_TIMEOUT)  # noqa: S310 (http(s) only)
    except urllib.error.HTTPError as err:
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise FetchError(f"{url}: cannot connect ({err.reason})") from err


def remote_size(url: str) -> int:
    """``Content-Length`` of ``url`` from a HEAD request."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    with _open(url, "HEAD") as response:
        length = response.headers.get("Content-Length")
    if length is None:
        raise FetchError(f"{url}: the server gives no size (Content-Length).")
    return int(length)


def download_url(
    url: str,
    path: Path,
    *,
    size: int,
    progress: Callable[[int], None],
    sha256_prefix: str | None = None,
    sha256: str | None = None,
    sha256_from: str = "",
    limit_rate: float | None = None,
    cancel=None,
) -> tuple[Transfer, str]:
    """Download ``url`` to ``path`` through ``path.part``, resuming, then verify and rename.

    Parameters
    ----------
    url : str
    path : Path
    size : int
        Expected size (from :func:`remote_size`).
    progress : callable
        Called with the number of bytes after each chunk.
    sha256_prefix, sha256 : str, optional
        Expected start of, or whole, SHA-256 hex digest.
    sha256_from : str
        Where ``sha256`` comes from, for the error message.
    limit_rate : float, optional
        Maximum bytes per second.
    cancel : threading.Event, optional
        When set, the transfer stops at the next chunk (the ``.part`` is kept).

    Returns
    -------
    transfer : Transfer
    sha256 : str
        SHA-256 of the file.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(path)
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    digest = hashlib.sha256()
    for data in read_chunks(part) if have else ():
        digest.update(data)
    written = 0
    if have < size:
        with _open(url, headers={"Range": f"bytes={have}-"} if have else None) as response:
            if have and response.status != 206:  # the server ignored Range: start again
                part.unlink()
                have, digest = 0, hashlib.sha256()
            size_of_read = chunk_size(limit_rate)
            chunks = iter(lambda: response.read(size_of_read), b"")
            written = write_stream(chunks, part, update=digest.update, progress=progress,
                                   limit_rate=limit_rate, cancel=cancel)  # fmt: skip
    elif not part.exists():
        part.touch()
    got = part.stat().st_size
    if got != size:
        raise refuse(part, f"{path}: {got} bytes downloaded from {url}, expected {size}.")
    hexdigest = digest.hexdigest()
    if sha256_prefix and not hexdigest.startswith(sha256_prefix):
        raise refuse(part, f"{path} is corrupt: SHA-256 {hexdigest[:16]}…, but its name says it "
                     f"starts with {sha256_prefix} ({url}).")  # fmt: skip
    if sha256 and hexdigest != sha256:
        raise refuse(part, f"{path} is corrupt: SHA-256 {hexdigest}, expected {sha256} "
                     f"({sha256_from or url}).")
    os.replace(part, path)
    checked = "sha256" if sha256 else ("sha256 prefix" if sha256_prefix else "size only")
    return Transfer(path, got, written, have, checked), hexdigest
