"""Helpers of the rating tests: a synthetic run folder, servers in a thread or a process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: ``brainldm rate`` as a command line (its own error messages, no logging setup).
RATE_COMMAND = [
    sys.executable,
    "-c",
    "import sys; from brainldm.cli._rate import main_rate; sys.exit(main_rate())",
]


def write_run(root: Path, n_images=8, n_samples=2, size=16, conditions=("zc", "z", "c"), seed=0):
    """A reconstruction run folder in the format of brainldm.reconstruction.reconstruct."""
    from PIL import Image

    from brainldm.reconstruction import write_originals

    rng = np.random.default_rng(seed)
    ids = sorted(rng.choice(73_000, size=n_images, replace=False).tolist())
    originals = rng.integers(0, 256, size=(n_images, size, size, 3), dtype=np.uint8)
    write_originals(root, ids, originals)
    rows = []
    for condition in conditions:
        for nsd_id, original in zip(ids, originals, strict=True):
            for sample in range(1 if condition == "z" else n_samples):
                rel = f"{condition}/{nsd_id:06d}_{sample:02d}.png"
                (root / condition).mkdir(parents=True, exist_ok=True)
                noisy = np.clip(original + rng.normal(0, 40, original.shape), 0, 255)
                Image.fromarray(noisy.astype(np.uint8)).save(root / rel)
                rows.append(dict(nsd_id=nsd_id, condition=condition, sample=sample,
                                 seed=int(rng.integers(2**31)), path=rel))  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return ids


def rate_all_correct(run_dir, raters=("alice", "bob"), n=10):
    """Register ``raters`` and let each answer ``n`` trials, always right; the judgements."""
    from brainldm.rating import RatingStore, load_run, plan_trials

    run = load_run(run_dir)
    with RatingStore(Path(run_dir) / "rating" / "ratings.sqlite") as store:
        for name in raters:
            store.register_rater(name)
            plan = list(plan_trials(run, name).itertuples(index=False, name=None))
            for _ in range(n):
                trial = store.next_trial(name, plan)
                store.record_answer(name, trial.token, trial.side, 300.0)
        return store.judgements()


@contextlib.contextmanager
def server_thread(run_dir, **kwargs):
    """make_server on a free port, serving from a thread."""
    from brainldm.rating import make_server

    server = make_server(run_dir, port=0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=10)


class ServerProcess:
    """``brainldm rate serve`` in a subprocess; its URL read from stdout."""

    def __init__(self, run_dir, port=0, extra=(), timeout=30.0, log=None):
        cmd = [*RATE_COMMAND, "serve", "--run", str(run_dir), "--port", str(port), *extra]
        # stderr to a file: a pipe nobody reads could fill up and block the server.
        self.log = Path(log or Path(run_dir).parent / f"server-{time.monotonic_ns()}.log")
        self._stderr = open(self.log, "w")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl+C"):
                break
        else:
            self.kill()
            raise TimeoutError("the rating server did not start")
        if not self.lines or " on http://" not in self.lines[0]:
            self.kill()
            raise RuntimeError(
                f"the rating server did not start: {self.lines} {self.log.read_text()}"
            )
        self.url = self.lines[0].split(" on ")[-1].strip()
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self._stderr.close()
