"""Plain HTTP(S) downloads with ``Range`` resume, through the standard library."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from brainldm.fetch._common import (
    ATTEMPTS,
    FetchError,
    Transfer,
    chunk_size,
    drop_part,
    part_info_path,
    part_path,
    read_chunks,
    read_part_info,
    refuse,
    retry_wait,
    write_part_info,
    write_stream,
)

logger = logging.getLogger(__name__)

_TIMEOUT = 60

#: Errors of a connection that dropped mid-transfer: retried, resuming with Range.
_DROPPED = (OSError, http.client.HTTPException)


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
    info = read_part_info(path)
    if part.exists() and info is not None and (info.get("url"), info.get("size")) != (url, size):
        logger.warning("%s: the .part is of another version of %s; starting again", path, url)
        drop_part(path)
    resumed_from: int | None = None
    written = 0
    try:
        for attempt in range(1, ATTEMPTS + 1):
            have = part.stat().st_size if part.exists() else 0
            if have > size:
                drop_part(path)
                have = 0
            resumed_from = have if resumed_from is None else resumed_from
            digest = hashlib.sha256()
            for data in read_chunks(part) if have else ():
                digest.update(data)
            if have >= size:
                if not part.exists():
                    part.touch()
                break
            headers = {"Range": f"bytes={have}-"} if have else {}
            validator = (info or {}).get("validator") if have else None
            if validator:  # the rest of this version only; the server sends all when it changed
                headers["If-Range"] = validator
            try:
                with _open(url, headers=headers) as response:
                    if have and response.status != 206:  # Range ignored, or If-Range failed
                        drop_part(path)
                        have, digest, resumed_from = 0, hashlib.sha256(), 0
                    if not have:
                        etag = response.headers.get("ETag") or ""
                        info = {"url": url, "size": size, "validator": (
                            etag if etag and not etag.startswith("W/")
                            else response.headers.get("Last-Modified"))}  # fmt: skip
                        write_part_info(path, info)
                    size_of_read = chunk_size(limit_rate)
                    chunks = iter(lambda n=size_of_read: response.read(n), b"")
                    written += write_stream(chunks, part, update=digest.update, progress=progress,
                                            limit_rate=limit_rate, cancel=cancel)  # fmt: skip
            except _DROPPED as err:
                reason = f"{type(err).__name__}: {err}"
            else:
                if part.exists() and part.stat().st_size >= size:
                    break
                reason = "the connection closed early"
            if attempt < ATTEMPTS and retry_wait(attempt, cancel):
                logger.info("%s: %s; retrying with Range (%d of %d)", url, reason, attempt + 1,
                            ATTEMPTS)  # fmt: skip
                continue
            raise FetchError(f"{path}: the download from {url} failed {attempt} time(s) "
                             f"({reason}); "
                             "the partial download is kept: run the command again to resume.")
    except BaseException:
        if not part.exists():  # no bytes kept: no record of them either
            part_info_path(path).unlink(missing_ok=True)
        raise
    have = resumed_from or 0
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
    drop_part(path)  # the record beside the .part
    checked = "sha256" if sha256 else ("sha256 prefix" if sha256_prefix else "size only")
    return Transfer(path, got, written, have, checked), hexdigest
