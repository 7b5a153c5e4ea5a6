"""Benchmark: one encoding-size fit, features → voxels, with its statistics.

An encoding problem of the paper's size: n = 5,000 training trials (2,500
images × 2 repeats), 6,400 features (z, or any space after PCA), 20,000
voxels, 500 test images. Times :func:`brainldm.encoding.fit_encoding_model`
(grouped 5-fold CV over the alpha grid, refit, test predictions, r, p, FDR)
and, in the same run, the floor of unavoidable work (XᵀX, XᵀY and one
eigendecomposition of XᵀX), and reports each step's peak memory (each in its
own process) over the size of Y.

Usage: python benchmarks/encoding.py [--voxels 20000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _data(n_images: int, reps: int, n_features: int, n_voxels: int, n_test: int):
    import numpy as np

    rng = np.random.default_rng(0)
    F = rng.standard_normal((n_images + n_test, n_features), dtype=np.float32)
    W = rng.standard_normal((n_features, n_voxels), dtype=np.float32) / np.sqrt(n_features)
    W[:, n_voxels // 2 :] = 0  # half the voxels are null
    ids = np.repeat(np.arange(n_images), reps)
    test = np.arange(n_images, n_images + n_test)
    Ytr = F[ids] @ W * 0.3 + rng.standard_normal((len(ids), n_voxels), dtype=np.float32)
    Yte = F[test] @ W * 0.3 + 0.6 * rng.standard_normal((n_test, n_voxels), dtype=np.float32)
    return F[ids], Ytr, F[test], Yte, ids


def _measure(kind: str, args) -> dict:
    import numpy as np

    Xtr, Ytr, Xte, Yte, ids = _data(args.images, 2, args.features, args.voxels, args.test)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = {}
    if kind == "brainldm":
        from brainldm.encoding import fit_encoding_model

        res = fit_encoding_model({"z": Xtr}, Ytr, {"z": Xte}, Yte, groups=ids, n_components=None)
        planted = res.significant[: args.voxels // 2].mean()
        null = res.significant[args.voxels // 2 :].mean()
        out = {"significant_planted": float(planted), "significant_null": float(null)}
    else:  # floor: the products and one eigendecomposition
        Xc = (Xtr - Xtr.mean(0)) / Xtr.std(0)
        gram = Xc.T @ Xc
        Xc.T @ Ytr
        np.linalg.eigh(gram)
    seconds = time.perf_counter() - t0
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    return {"seconds": seconds, "peak_extra_gb": peak / 2**30, "Y_gb": Ytr.nbytes / 2**30, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2500, help="training images (×2 trials)")
    parser.add_argument("--features", type=int, default=6400)
    parser.add_argument("--voxels", type=int, default=20000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.images, args.features, args.voxels, args.test = 300, 200, 1000, 60
    if args._measure:
        print(json.dumps(_measure(args._measure, args)))
        return
    flags = ["--images", str(args.images), "--features", str(args.features), "--voxels",
             str(args.voxels), "--test", str(args.test)]  # fmt: skip
    results = {}
    for kind in ("floor", "brainldm"):
        out = subprocess.run([sys.executable, __file__, "--_measure", kind, *flags],
                             capture_output=True, text=True, check=True)  # fmt: skip
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, floor = results["brainldm"], results["floor"]
    print(f"n {2 * args.images} trials x {args.features} features -> {args.voxels} voxels, "
          f"{args.test} test images")  # fmt: skip
    print(f"{'step':<34}{'seconds':>9}{'peak GB':>9}{'peak / Y':>10}")
    for name, r in (("floor: XtX, XtY, eigh", floor), ("brainldm fit + CV + stats", ours)):
        print(f"{name:<34}{r['seconds']:>9.1f}{r['peak_extra_gb']:>9.2f}"
              f"{r['peak_extra_gb'] / r['Y_gb']:>9.2f}x")  # fmt: skip
    print(f"\nbrainldm / floor: {ours['seconds'] / floor['seconds']:.2f}x; significant voxels: "
          f"planted {ours['significant_planted']:.3f}, null {ours['significant_null']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
