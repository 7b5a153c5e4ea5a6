"""The shared machinery of every download: the thread pool and ``.part`` writing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from brainldm.fetch import FetchError, Transfer
from brainldm.fetch._common import run_parallel, write_stream


def test_first_error_stops_queued_jobs_from_starting():
    cancel = threading.Event()
    started: list[int] = []

    def job(i: int):
        def run() -> Transfer:
            started.append(i)
            if i == 0:
                raise FetchError("job 0 failed")
            if i == 1:  # (2 workers) runs beside job 0: done only once the failure is known
                cancel.wait(10)
            return Transfer(Path(f"f{i:02d}"), 1, 1, 0, "size only")
        return run

    for workers in (1, 2):
        started.clear()
        cancel.clear()
        with pytest.raises(FetchError, match="job 0 failed"):
            run_parallel([job(i) for i in range(30)], workers, cancel)
        assert cancel.is_set()
        # job 0 fails; with 2 workers at most job 1, maybe running beside it, ran too
        assert 0 in started and set(started) <= set(range(workers)), started


def test_all_jobs_run_and_results_are_sorted():
    jobs = [lambda i=i: Transfer(Path(f"f{i:02d}"), 1, 1, 0, "") for i in reversed(range(12))]
    result = run_parallel(jobs, 3, threading.Event())
    assert [t.path.name for t in result] == [f"f{i:02d}" for i in range(12)]


def test_cancelled_stream_leaves_no_empty_part(tmp_path):
    cancel = threading.Event()
    cancel.set()
    part = tmp_path / "x.part"
    with pytest.raises(FetchError, match="stopped; run the command again to resume"):
        write_stream(iter([b"abc"]), part, update=lambda d: None, progress=lambda n: None,
                     limit_rate=None, cancel=cancel)  # fmt: skip
    assert not part.exists()

    def failing():
        raise ConnectionError("dropped before the first byte")
        yield b""  # pragma: no cover

    with pytest.raises(ConnectionError):
        write_stream(failing(), part, update=lambda d: None, progress=lambda n: None,
                     limit_rate=None)  # fmt: skip
    assert not part.exists()


def test_fetch_bookkeeping_leaves_the_weights_fingerprint_alone(tmp_path):
    """A later ``fetch weights`` (.part, .part.json, hashes.json, .cache/) makes no stage stale."""
    from brainldm._utils import path_fingerprint

    sd = tmp_path / "stable-diffusion-v1-4"
    (sd / "unet").mkdir(parents=True)
    (sd / "unet" / "model.safetensors").write_bytes(b"weights" * 100)
    before = path_fingerprint(sd)
    (sd / "unet" / "other.bin.part").write_bytes(b"half")
    (sd / "unet" / "other.bin.part.json").write_text("{}")
    (sd / "hashes.json").write_text("{}")
    (sd / ".cache" / "huggingface").mkdir(parents=True)
    (sd / ".cache" / "huggingface" / "x.metadata").write_text("abc")
    assert path_fingerprint(sd) == before
    (sd / "unet" / "config.json").write_text("{}")  # a real new file still counts
    assert path_fingerprint(sd) != before
