"""Benchmark: reconstruction throughput with 1 and 2 Ray workers, and the Ray path's overhead.

Three runs of :func:`brainldm.reconstruction.run_reconstruction` on the tiny random
model, in one process and one session, each into a fresh folder:

- ``local``: ``Execution(executor="local")``, torch on 1 thread (what a 1-CPU Ray
  worker gets);
- ``ray, 1 worker`` and ``ray, 2 workers``: ``Execution(executor="ray")`` on a local cluster
  started once beforehand (its start-up is reported, not counted).

Each run is timed end to end (actor start, model load, images, final check);
then it is run again on its finished folder, which makes no image and so
measures the fixed cost alone. ``images/s excl. fixed`` divides the images by
the difference (rough: the fixed cost varies from run to run on a busy machine).
``busy cores`` is how many cores the whole machine kept busy during the run
(Linux): above 1 for a one-worker run means other processes were competing.
With ``--repeats``, the fastest of the repeats is kept. The script checks that
all output folders hold the very same bytes.

Usage: python benchmarks/scale.py [--images 12] [--steps 10] [--image-size 512] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def _folder_bytes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def _busy_cpu_seconds() -> float:
    """CPU seconds the machine has spent busy since boot (0 where /proc/stat is missing)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps of a full trajectory")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--shard-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch

    from brainldm.config import ReconstructionConfig
    from brainldm.distributed import Execution
    from brainldm.ldm import make_tiny_ldm, save_ldm
    from brainldm.reconstruction import run_reconstruction

    work = Path(tempfile.mkdtemp(prefix="brainldm_bench_scale_"))
    model = save_ldm(make_tiny_ldm(seed=0), work / "model")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((args.images, 4, 40, 40)).astype(np.float32) * 0.8
    c = rng.standard_normal((args.images, 77, 32)).astype(np.float32)
    ids = list(range(args.images))
    config = ReconstructionConfig(num_inference_steps=args.steps, n_samples=1,
                                  image_size=args.image_size)  # fmt: skip
    common = dict(conditions=("zc",), config=config)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    torch.set_num_threads(1)

    runs = {
        "local": Execution(executor="local", shard_size=args.shard_size),
        "ray, 1 worker": Execution(executor="ray", n_workers=1, shard_size=args.shard_size),
        "ray, 2 workers": Execution(executor="ray", n_workers=2, shard_size=args.shard_size),
    }
    results, outs = {}, []
    for repeat in range(args.repeats):
        for name, execution in runs.items():
            out = work / f"{name.replace(', ', '_').replace(' ', '')}_{repeat}"
            busy0, t0 = _busy_cpu_seconds(), time.perf_counter()
            run_reconstruction(model, z, c, ids, out, **common, execution=execution)
            busy1, t1 = _busy_cpu_seconds(), time.perf_counter()
            # again: nothing left to do, what remains is the fixed cost
            run_reconstruction(model, z, c, ids, out, **common, execution=execution)
            run = {"seconds": t1 - t0, "fixed": time.perf_counter() - t1,
                   "busy": (busy1 - busy0) / (t1 - t0)}  # fmt: skip
            if name not in results or run["seconds"] < results[name]["seconds"]:
                results[name] = run
            outs.append(out)
    ray.shutdown()

    reference = _folder_bytes(outs[0])
    same = all(_folder_bytes(out) == reference for out in outs[1:])
    shutil.rmtree(work)
    print(
        f"{args.images} zc images, {args.image_size} px, {args.steps}-step schedule (strength "
        f"0.8), tiny model, shards of {args.shard_size}; CPU cores: {os.cpu_count()}; load "
        f"average {os.getloadavg()[0]:.1f}; Ray start-up {ray_start:.1f} s (not counted)"
    )
    print(f"\n{'run':<16}{'seconds':>9}{'images/s':>10}{'fixed s':>9}{'images/s excl. fixed':>22}"
          f"{'busy cores':>12}")  # fmt: skip
    for name, r in results.items():
        r["rate"] = args.images / r["seconds"]
        r["steady"] = args.images / max(r["seconds"] - r["fixed"], 1e-9)
        print(f"{name:<16}{r['seconds']:>9.1f}{r['rate']:>10.2f}{r['fixed']:>9.1f}"
              f"{r['steady']:>22.2f}{r['busy']:>12.1f}")  # fmt: skip
    one, two, local = results["ray, 1 worker"], results["ray, 2 workers"], results["local"]
    print(
        f"\n2 workers / 1 worker throughput: {two['rate'] / one['rate']:.2f}x end to end, "
        f"{two['steady'] / one['steady']:.2f}x excluding fixed costs"
    )
    print(
        f"Ray, 1 worker vs local: {one['seconds'] / local['seconds'] - 1:+.0%} time end to end, "
        f"{local['steady'] / one['steady'] - 1:+.0%} excluding fixed costs; fixed cost "
        f"{one['fixed']:.1f} s vs {local['fixed']:.1f} s"
    )
    print(f"outputs byte-identical across all {len(outs)} runs: {same}")


if __name__ == "__main__":
    main()
