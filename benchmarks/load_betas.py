"""Benchmark: loading a subject's ROI betas from a realistic-size synthetic NSD.

Writes (once, cached) a synthetic NSD with NSD's func1pt8mm grid (81 × 104 × 83),
750 trials per session and NSD's HDF5 chunking (one voxel per chunk), then
measures, each in a fresh process and in the same run:

- ``brainldm``: ``load_betas`` of an ROI over all sessions (masked as it reads);
- ``raw h5py``: ``f["betas"][:]`` of the same files, the read the authors' code
  starts from (it then masks the whole brain).

It prints peak memory over the size of the masked result, and throughput as the
raw read's time over ours (both warm page cache: the best of two runs each).
Goals: memory <= 1.5x the masked data, throughput >= 0.7x the raw read.

Usage: python benchmarks/load_betas.py [--sessions 10] [--root DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _status_bytes(field: str) -> int:
    """VmRSS / VmHWM of this process (Linux), else the lifetime peak ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> int:
    """Reset VmHWM to the current RSS (Linux >= 4.0); return that RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_bytes("VmRSS")


def _measure(kind: str, root: str, roi: str, atlas: str, n_sessions: int) -> dict:
    import h5py
    import numpy as np

    from brainldm.nsd import NSDLayout, load_betas, load_roi_mask

    layout = NSDLayout(root)
    sessions = list(range(1, n_sessions + 1))
    mask = load_roi_mask(layout, 1, roi, atlas)
    before = _reset_peak()  # the peak from here on is the load's own
    t0 = time.perf_counter()
    if kind == "brainldm":
        betas = load_betas(layout, 1, sessions, mask, "hdf5")
        n_trials = betas.shape[0]
    else:
        n_trials = 0
        for s in sessions:
            with h5py.File(layout.betas(1, s, "hdf5"), "r") as f:
                raw = f["betas"][:]
            n_trials += raw.shape[0]
            del raw
    seconds = time.perf_counter() - t0
    masked_bytes = n_trials * mask.n_voxels * np.dtype("float32").itemsize
    return {
        "seconds": seconds,
        "peak_extra_bytes": _status_bytes("VmHWM") - before,
        "masked_bytes": masked_bytes,
        "n_voxels": mask.n_voxels,
        "n_trials": n_trials,
    }


def _ensure_data(root: Path, n_sessions: int, n_trials: int, grid: tuple[int, int, int]) -> None:
    marker = root / "benchmark.json"
    spec = {"sessions": n_sessions, "trials": n_trials, "grid": list(grid), "version": 2}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return
    from brainldm.testing import write_fake_nsd

    print(f"writing a synthetic NSD to {root} (cached for later runs) ...", flush=True)
    t0 = time.perf_counter()
    write_fake_nsd(
        root,
        subjects=(1,),
        n_sessions=n_sessions,
        n_trials_per_session=n_trials,
        n_design_sessions=max(40, n_sessions) if n_trials == 750 else n_sessions + 1,
        n_shared=1000 if n_trials == 750 else 10,
        n_stimuli=73000 if n_trials == 750 else 5000,
        volume_shape=grid,
        image_size=32,
        formats=("hdf5",),
        n_fsaverage_vertices=None,
        keep_betas=False,
    )
    marker.write_text(json.dumps(spec))
    print(f"  written in {time.perf_counter() - t0:.0f} s", flush=True)


def _run(kind: str, args: argparse.Namespace, roi: str, atlas: str) -> dict:
    cmd = [
        sys.executable, __file__, "--_measure", kind, "--root", str(args.root),
        "--sessions", str(args.sessions), "--_roi", roi, "--_atlas", atlas,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/brainldm_bench_nsd"))
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="2 sessions, small grid")
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    parser.add_argument("--_roi", help=argparse.SUPPRESS)
    parser.add_argument("--_atlas", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        print(json.dumps(_measure(args._measure, str(args.root), args._roi, args._atlas,
                                  args.sessions)))  # fmt: skip
        return
    if args.quick:
        args.sessions, trials, grid = 2, 60, (30, 36, 28)
        args.root = args.root.with_name(args.root.name + "_quick")
    else:
        trials, grid = 750, (81, 104, 83)
    _ensure_data(args.root, args.sessions, trials, grid)
    print(f"\n{args.sessions} sessions x {trials} trials, grid {grid}, NSD chunking (T,1,1,1)")
    print(f"{'ROI':<12}{'voxels':>8}{'masked MB':>11}{'ours s':>9}{'raw s':>9}"
          f"{'speed ratio':>13}{'peak/masked':>13}")  # fmt: skip
    # The raw read does not depend on the ROI: measure it once (best of two).
    raw = min((_run("raw", args, "early", "streams") for _ in range(2)), key=lambda r: r["seconds"])
    for roi, atlas in (("early", "streams"), ("ventral", "streams"), ("nsdgeneral", "nsdgeneral")):
        ours = min((_run("brainldm", args, roi, atlas) for _ in range(2)),
                   key=lambda r: r["seconds"])  # fmt: skip
        speed = raw["seconds"] / ours["seconds"]
        memory = ours["peak_extra_bytes"] / ours["masked_bytes"]
        print(f"{roi:<12}{ours['n_voxels']:>8}{ours['masked_bytes'] / 2**20:>11.0f}"
              f"{ours['seconds']:>9.2f}{raw['seconds']:>9.2f}{speed:>12.2f}x{memory:>12.2f}x")  # fmt: skip
    print("\nspeed ratio = raw h5py read time / brainldm time (goal >= 0.7x);"
          " peak/masked = extra peak RSS / masked float32 result (goal <= 1.5x)")


if __name__ == "__main__":
    main()
