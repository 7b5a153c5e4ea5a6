"""What every download shares: the error type, hashes, ``.part`` files and the thread pool."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from brainldm.evaluation import file_sha256  # noqa: F401 (one definition, used by fetch)

#: Bytes read or written at a time.
CHUNK = 1 << 20

#: Suffix of a file being downloaded; the finished file is renamed from it.
PART_SUFFIX = ".part"

#: Suffix of the record beside a ``.part`` of which remote version it holds (ETag, date).
PART_INFO_SUFFIX = ".part.json"

#: Attempts of one transfer when the connection drops mid-file (each resumes with Range).
ATTEMPTS = 3

#: Seconds before the n-th retry: ``RETRY_BACKOFF * n``.
RETRY_BACKOFF = 0.5


class FetchError(RuntimeError):
    """A download that could not be done or verified; nothing wrong was left in place."""


@dataclass(frozen=True)
class Transfer:
    """What one finished download did.

    Attributes
    ----------
    path : Path
        The local file.
    size : int
        Its size in bytes.
    downloaded : int
        Bytes transferred in this call (0 when the file was already complete).
    resumed_from : int
        Bytes of a ``.part`` file kept from an earlier, interrupted call.
    verified : str
        How the content was checked, e.g. ``"md5"``, ``"sha256"``, ``"size only"``.
    part_size : int or None
        Part size of a multipart S3 ETag (recorded so that ``fetch status`` can
        recompute it); None otherwise.
    """

    path: Path
    size: int
    downloaded: int
    resumed_from: int
    verified: str
    part_size: int | None = None


def chunk_size(limit_rate: float | None) -> int:
    """Bytes per read: smaller under a rate limit, so that progress stays smooth."""
    return CHUNK if not limit_rate else int(max(1024, min(CHUNK, limit_rate // 8)))


def part_path(path: Path) -> Path:
    """The ``.part`` file beside ``path`` (``betas_session01.hdf5.part``)."""
    return path.with_name(path.name + PART_SUFFIX)


def part_info_path(path: Path) -> Path:
    """The record beside ``path.part`` of the remote version it holds."""
    return path.with_name(path.name + PART_INFO_SUFFIX)


def read_part_info(path: Path) -> dict | None:
    """What :func:`write_part_info` saved for ``path.part`` (None if nothing readable)."""
    info = part_info_path(path)
    try:
        data = json.loads(info.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_part_info(path: Path, info: dict) -> None:
    """Save which remote version ``path.part`` holds (ETag, Last-Modified, size)."""
    from brainldm._utils import write_json_atomic

    write_json_atomic(part_info_path(path), info)


def drop_part(path: Path) -> None:
    """Remove ``path.part`` and its record."""
    part_path(path).unlink(missing_ok=True)
    part_info_path(path).unlink(missing_ok=True)


def format_size(n_bytes: float) -> str:
    """``1234567`` → ``"1.23 MB"`` (decimal units, as cloud consoles show sizes)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n_bytes) < 1000 or unit == "TB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.2f} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


class ETagHasher:
    """The S3 ETag of a stream: MD5 hex, or ``md5(md5(part1) + ...)-N`` for multipart uploads.

    Parameters
    ----------
    part_size : int or None
        Part size of a multipart upload; None for a single-part object.
    """

    def __init__(self, part_size: int | None = None) -> None:
        self.part_size = part_size
        self._whole = hashlib.md5()  # noqa: S324 (an S3 checksum, not security)
        self._part = hashlib.md5()  # noqa: S324
        self._in_part = 0
        self._digests: list[bytes] = []

    def update(self, data: bytes) -> None:
        """Add the next bytes of the stream."""
        if self.part_size is None:
            self._whole.update(data)
            return
        view = memoryview(data)
        while len(view):
            take = min(len(view), self.part_size - self._in_part)
            self._part.update(view[:take])
            self._in_part += take
            view = view[take:]
            if self._in_part == self.part_size:
                self._close_part()

    def _close_part(self) -> None:
        self._digests.append(self._part.digest())
        self._part = hashlib.md5()  # noqa: S324
        self._in_part = 0

    def hexdigest(self) -> str:
        """The ETag without quotes."""
        if self.part_size is None:
            return self._whole.hexdigest()
        if self._in_part:
            self._close_part()
        joined = hashlib.md5(b"".join(self._digests)).hexdigest()  # noqa: S324
        return f"{joined}-{len(self._digests)}"


def read_chunks(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """The bytes of ``path`` (its first ``limit`` bytes), ``CHUNK`` at a time."""
    left = limit
    with open(path, "rb") as fh:
        while left is None or left > 0:
            data = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data


def git_blob_sha1(path: Path) -> str:
    """Git's blob id of a file: SHA-1 of ``b"blob <size>"``, a zero byte, then the content."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324
    for data in read_chunks(path):
        digest.update(data)
    return digest.hexdigest()


class RateLimit:
    """Sleep so that a stream does not pass ``bytes_per_s`` (None: no limit)."""

    def __init__(self, bytes_per_s: float | None) -> None:
        self.bytes_per_s = bytes_per_s
        self._start = time.monotonic()
        self._done = 0

    def wait(self, n_bytes: int) -> None:
        """Account for ``n_bytes`` just transferred."""
        if not self.bytes_per_s:
            return
        self._done += n_bytes
        ahead = self._done / self.bytes_per_s - (time.monotonic() - self._start)
        if ahead > 0:
            time.sleep(ahead)


def write_stream(
    chunks: Iterable[bytes],
    part: Path,
    *,
    update: Callable[[bytes], None],
    progress: Callable[[int], None],
    limit_rate: float | None,
    cancel: threading.Event | None = None,
) -> int:
    """Append ``chunks`` to ``part``, feeding each to ``update``; return bytes written.

    Stops with a FetchError when ``cancel`` is set (another transfer failed, or
    Ctrl-C), leaving ``part`` to be resumed.
    """
    rate = RateLimit(limit_rate)
    written = 0
    fh = None
    try:
        for data in chunks:
            if cancel is not None and cancel.is_set():
                raise FetchError(f"{part}: stopped; run the command again to resume.")
            if fh is None:  # opened at the first bytes: no empty .part is ever left
                fh = open(part, "ab")  # noqa: SIM115 (closed below)
            fh.write(data)
            update(data)
            written += len(data)
            progress(len(data))
            rate.wait(len(data))
        if fh is not None:
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        if fh is not None:
            fh.close()
    return written


def retry_wait(attempt: int, cancel: threading.Event | None) -> bool:
    """Wait before retry ``attempt`` (1, 2, ...); False when ``cancel`` was set meanwhile."""
    if cancel is None:
        time.sleep(RETRY_BACKOFF * attempt)
        return True
    return not cancel.wait(RETRY_BACKOFF * attempt)


def differs_message(rows: list[tuple[Path, int, int]]) -> str:
    """The refusal to replace files whose size differs from the remote one."""
    lines = "\n".join(f"  {path} ({have} bytes; the remote file has {size})"
                      for path, have, size in rows[:20])  # fmt: skip
    more = f"\n  ... and {len(rows) - 20} more" if len(rows) > 20 else ""
    return (f"{len(rows)} file(s) already in place differ in size from the remote ones:\n"
            f"{lines}{more}\nNothing was downloaded. Move them away, or pass --force "
            "(force=True) to replace them.")


def refuse(part: Path, message: str) -> FetchError:
    """Remove a downloaded ``.part`` that failed its check, and return the error to raise."""
    part.unlink(missing_ok=True)
    part.with_name(part.name[: -len(PART_SUFFIX)] + PART_INFO_SUFFIX).unlink(missing_ok=True)
    return FetchError(f"{message} The partial download was removed; run the command again.")


class ByteProgress:
    """One tqdm bar over bytes for all transfers (thread-safe); a no-op when disabled."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str) -> None:
        self._lock = threading.Lock()
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True,
                             unit_divisor=1000, desc=desc)  # fmt: skip

    def __call__(self, n_bytes: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(n_bytes)

    def close(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()


def run_parallel(
    jobs: list[Callable[[], Transfer]], workers: int, cancel: threading.Event
) -> list[Transfer]:
    """Run download jobs on ``workers`` threads; the first error is raised once all stopped.

    On the first error ``cancel`` is set at once: no queued job starts any more, and
    running ones stop at their next chunk, each leaving a ``.part`` to resume. On
    Ctrl-C the same happens, but this waits a few seconds only for the running
    ones (the threads are daemons: one blocked in a library call does not keep
    the process alive).
    """
    from brainldm._utils import check_positive_int

    check_positive_int("workers", workers)
    results: list[Transfer] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    queue = list(reversed(jobs))

    def worker() -> None:
        while True:
            with lock:
                if cancel.is_set() or not queue:
                    return
                job = queue.pop()
            try:
                result = job()
            except BaseException as err:  # noqa: BLE001 (re-raised in the calling thread)
                with lock:
                    errors.append(err)
                cancel.set()
                return
            with lock:
                results.append(result)

    threads = [threading.Thread(target=worker, name=f"brainldm-fetch-{i}", daemon=True)
               for i in range(min(workers, len(jobs)))]  # fmt: skip
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except BaseException:  # Ctrl-C in the main thread
        cancel.set()
        deadline = time.monotonic() + 5
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        raise
    if errors:
        raise errors[0]
    return sorted(results, key=lambda t: str(t.path))
