"""Two-way identification: vectorised vs the loop reference, in the same run.

The paper's setting: 1,000 test images × 5 samples × a 9,216-d feature (AlexNet
features.12 at 224 px is 256 × 6 × 6 = 9,216). The loop reference
(``tests/evaluation/evaluation_reference.py``, the authors' ``identification.py``
and a per-comparison loop for MindEye's orientation) needs about 5 million
``np.corrcoef`` calls for all images, so it is timed on a subset of anchor images
and extrapolated linearly to all of them (each anchor costs the same: a loop over
all n_images columns). The vectorised accuracies of those anchors are checked
against the loop's (to 1e-12).

    python benchmarks/evaluation.py [--images 1000] [--samples 5] [--dim 9216] [--anchors 20]

The noise level makes the accuracies realistic (neither chance nor 100%).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluation"))
from evaluation_reference import (  # noqa: E402
    mindeye_identification_loop,
    takagi_identification_loop,
)

from brainldm.evaluation import two_way_identification  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--dim", type=int, default=9216)
    parser.add_argument(
        "--anchors", type=int, default=20, help="anchor images timed with the loop reference"
    )
    parser.add_argument("--repeats", type=int, default=3, help="vectorised runs (best is kept)")
    parser.add_argument(
        "--noise",
        type=float,
        default=100.0,
        help="noise s.d. of the samples (100 gives accuracies well below 1)",
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n, k, d = args.images, args.samples, args.dim
    original = rng.standard_normal((n, d), dtype=np.float32)
    recon = original[:, None, :] + np.float32(args.noise) * rng.standard_normal(
        (n, k, d), dtype=np.float32
    )
    anchors = np.linspace(0, n - 1, args.anchors).astype(int)
    print(
        f"{n} images × {k} samples × {d} features (float32 input, float64 correlations); "
        f"CPU threads: {os.cpu_count()}"
    )

    loops = {"takagi": takagi_identification_loop, "mindeye": mindeye_identification_loop}
    for protocol, loop in loops.items():
        best = np.inf
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = two_way_identification(original, recon, protocol)
            best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = loop(original.astype(np.float64), recon.astype(np.float64), anchors=anchors)
        loop_subset = time.perf_counter() - t0
        loop_full = loop_subset * n / len(anchors)
        same = np.allclose(result.accuracy_per_image[anchors], ref, rtol=0, atol=1e-12)
        print(
            f"{protocol:8s} vectorised {best:7.2f} s (best of {args.repeats}), "
            f"accuracy {result.accuracy:.4f}"
        )
        print(
            f"{'':8s} loop      {loop_subset:7.2f} s for {len(anchors)} anchors → "
            f"{loop_full:8.1f} s extrapolated to {n}; equal on the anchors: {same}"
        )
        print(f"{'':8s} speed-up  {loop_full / best:7.0f}×")


if __name__ == "__main__":
    main()
