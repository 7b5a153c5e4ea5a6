"""Benchmark: prepare → decode → encode at NSD's real size, through the real code paths.

Writes one synthetic subject in NSD's real formats and dimensions (81 × 104 × 83
grid, ``--brain-voxels`` in ``brainmask.nii.gz``, 750 trials per session, the
paper's sessions 1-37 of a 40-session design, 10,000 images per subject, 1,000
shared), and feature stores of Stable Diffusion v1.4's real shapes filled with
random values (no LDM is run): z 4 × 40 × 40, c 77 × 768, zc 4 × 64 × 64 at
three noise levels and three stages, and flattened U-Net activations (float16).
Then each stage runs in its own process, which reports its peak resident
memory (``ru_maxrss``), wall time and the disk it added:

- ``prepare``: the whole-brain encoding split (``"brain"``) and the decoding
  split (``early``, ``ventral``), streamed to chunked HDF5;
- ``decode``: :func:`brainldm.decoding.fit_decoders` with the paper's ridge:
  z in full, c on ``--c-targets`` of its 59,136 targets (extrapolated by batches);
- ``pca``: exact PCA to 6,400 of each ``--pca-spaces`` feature set on the
  distinct training images, straight from the stores;
- ``ridge``: the encoding fits of :func:`brainldm.encoding.run_encoding_analyses`
  (:func:`~brainldm.encoding.fit_voxel_block`) of the single model z and the
  joint model z + zc, on one block of each ``--ridge-blocks`` size read from the
  full-width on-disk betas; two sizes separate the cost per block (the
  decompositions of the features) from the cost per voxel. The joint model
  runs one of its alpha groups (equal alphas for both spaces), the others
  cost the same and are counted in the extrapolation.

Memory is measured at full width: every voxel of the mask is in the split the
fits read from, and every PCA keeps 6,400 components; only the voxel blocks
fitted, the alpha groups of the joint model and the c targets decoded are a
share. The printout gives the measured rate and the extrapolated time of the paper's whole analysis for the
subject (every model of analyses (i)-(iv) over every voxel; PCA of sets not
measured scaled by n_train² × n_features from the measured ones).

To fit a small disk, only ``--written-sessions`` beta files are written; the
later sessions are hard links to them (their values repeat, the reading work
does not). Nothing here is a test: the figures are for ``docs/scaling.md``.

Usage: python benchmarks/nsd_scale.py --root DIR [--brain-voxels 250000]
       [--written-sessions 2] [--ridge-blocks 1024,6144]
       [--c-targets 6144] [--unet-layers mid_block,down_blocks.1] [--device cpu]
       [--stages write,prepare,decode,pca,ridge]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

GRID = (81, 104, 83)  # subj01's func1pt8mm grid
SHAPES = {"z": (4, 40, 40), "c": (77, 768), "zc": (4, 64, 64)}
#: SD v1.4 U-Net block outputs for a 64 × 64 latent (512 px): channels × h × w.
UNET = {
    "down_blocks.1": (640, 16, 16),
    "down_blocks.2": (1280, 8, 8),
    "mid_block": (1280, 8, 8),
    "up_blocks.1": (1280, 32, 32),
    "up_blocks.2": (640, 64, 64),
}
STRENGTHS, FRACTIONS = (0.25, 0.5, 0.75), (0.2, 0.66, 1.0)


def _bytes(path: Path) -> int:
    """Bytes on disk under ``path``, each hard-linked file once."""
    seen = {}
    for p in path.rglob("*") if path.exists() else ():
        if p.is_file():
            st = p.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def _write(args) -> dict:
    import numpy as np

    from brainldm.features import FeatureStore, zc_store_name
    from brainldm.nsd import NSDLayout, load_trials
    from brainldm.testing import write_fake_nsd

    root = Path(args.root)
    write_fake_nsd(
        root / "nsd", subjects=(1,), n_sessions=37, n_trials_per_session=750,
        n_design_sessions=40, n_shared=1000, n_stimuli=73000, volume_shape=GRID,
        image_size=16, n_captions=(5, 5), n_fsaverage_vertices=None, formats=("hdf5",),
        keep_betas=False, n_written_sessions=args.written_sessions,
        brain_voxels=args.brain_voxels,
    )  # fmt: skip
    ids = np.unique(load_trials(NSDLayout(root / "nsd"), 1).nsd_ids)
    stores = {"z": (SHAPES["z"], "float32"), "c": (SHAPES["c"], "float32")}
    for s in STRENGTHS:
        for f in FRACTIONS:
            stores[zc_store_name(s, f)] = (SHAPES["zc"], "float32")
    for layer in args.unet_layers:  # one stage: the PCA's work is the same at each
        stores[zc_store_name(0.5, 1.0, layer)] = (UNET[layer], "float16")
    rng = np.random.default_rng(0)
    for name, (shape, dtype) in stores.items():
        store = FeatureStore(root / "features", name, {"benchmark": True}, dtype=dtype)
        for start in range(0, len(ids), 64):
            batch = ids[start : start + 64]
            if len(store.missing(batch)):
                store.put(batch, rng.standard_normal((len(batch), *shape), dtype=np.float32))
        store.consolidate()
    return {"n_images": int(len(ids)), "stores": list(stores)}


def _prepare(args) -> dict:
    from brainldm.nsd import NSDLayout, prepare_subject

    layout, out = NSDLayout(Path(args.root) / "nsd"), {}
    for name, rois in (("encoding", ("brain",)), ("decoding", ("early", "ventral"))):
        t0 = time.perf_counter()
        split, path = prepare_subject(layout, 1, Path(args.root) / "prepared", rois=rois,
                                      split="takagi2023")  # fmt: skip
        out[name] = {
            "file": path.name, "seconds": time.perf_counter() - t0,
            "voxels": {r: int(split.voxel_indices[r].shape[0]) for r in split.rois},
            "n_train": int(len(split.train_nsd_ids)), "n_test": int(len(split.test_nsd_ids)),
        }  # fmt: skip
    return out


def _split(args, name: str, lazy: bool):
    from brainldm.nsd import SubjectSplit

    info = json.loads((Path(args.root) / "prepare.json").read_text())["result"][name]
    return SubjectSplit.load(Path(args.root) / "prepared" / info["file"], lazy=lazy)


class _FirstColumns:
    """A store seen through its first ``n`` feature columns (a share of c's targets)."""

    def __init__(self, store, n):
        self.store, self.n = store, n

    def get(self, ids):
        return self.store.get(ids).reshape(len(ids), -1)[:, : self.n]


def _decode(args) -> dict:
    from brainldm.config import DecodingConfig
    from brainldm.decoding import fit_decoders
    from brainldm.features import FeatureStore

    split = _split(args, "decoding", lazy=False)
    folder, out = Path(args.root) / "features", {}
    targets = {
        "image_latents": FeatureStore(folder, "z"),
        "text_embeddings": _FirstColumns(FeatureStore(folder, "c"), args.c_targets),
    }
    for target, source in targets.items():
        t0 = time.perf_counter()
        fit_decoders(split, {target: source}, config=DecodingConfig())
        n = 6400 if target == "image_latents" else min(args.c_targets, 59136)
        out[target] = {"seconds": time.perf_counter() - t0, "targets": n}
    return out


def _pca(args) -> dict:
    import numpy as np

    from brainldm.encoding import reduce_space
    from brainldm.features import FeatureStore

    split = _split(args, "encoding", lazy=True)
    folder, out = Path(args.root) / "features", {}
    spaces = ["z", *args.pca_spaces]
    for name in spaces:
        store = FeatureStore(folder, name)
        t0 = time.perf_counter()
        space = reduce_space(name, store.matrix(split.train_nsd_ids),
                             store.matrix(split.test_nsd_ids), groups=split.train_nsd_ids,
                             n_components=6400)  # fmt: skip
        np.savez(Path(args.root) / f"reduced_{name}.npz", train=space.train, test=space.test,
                 index=space.train_index)  # fmt: skip
        out[name] = {"seconds": time.perf_counter() - t0, "features": int(store.n_features),
                     "components": space.n_components,
                     "n_train_images": int(space.train.shape[0])}  # fmt: skip
    return out


def _ridge(args) -> dict:
    import numpy as np

    from brainldm.config import EncodingConfig
    from brainldm.encoding import ReducedSpace, fit_voxel_block, model_cv_strategy
    from brainldm.features import zc_store_name
    from brainldm.ridge._search import alpha_groups, banded_candidates

    split = _split(args, "encoding", lazy=True)
    Y_train, Y_test = split.train_betas["brain"], split.test_betas["brain"]
    n_voxels = Y_train.shape[1]

    def space(name):
        with np.load(Path(args.root) / f"reduced_{name}.npz") as d:
            return ReducedSpace(name, d["train"], d["test"], d["index"])

    grid = np.asarray(EncodingConfig.alphas, dtype=float)
    full = banded_candidates(grid, 2)
    zc = zc_store_name(0.5, 1.0)
    # The joint model runs one of its alpha groups (one decomposition each): equal alphas.
    models = {"z": ([space("z")], grid, 1, 1, len(grid), len(grid)),
              f"z+{zc}": ([space("z"), space(zc)], np.stack([grid, grid], 1), 1,
                          len(alpha_groups(full, [1, 1])), len(grid), len(full))}  # fmt: skip
    backend = "torch" if args.device != "cpu" else "numpy"
    out = {}
    for name, (spaces, alphas, groups, all_groups, cands, all_cands) in models.items():
        strategy = model_cv_strategy(spaces, n_voxels, split.train_nsd_ids, alphas)
        blocks = []
        for size in args.ridge_blocks:
            t0 = time.perf_counter()
            fit_voxel_block(spaces, Y_train[:, :size], Y_test[:, :size], split.train_nsd_ids,
                            alphas=alphas, backend=backend, device=args.device,
                            cv_strategy=strategy)  # fmt: skip
            blocks.append([size, time.perf_counter() - t0])
        out[name] = {"blocks": blocks, "n_voxels": int(n_voxels), "cv_strategy": strategy,
                     "n_features": int(sum(s.n_components for s in spaces)),
                     "n_train": int(Y_train.shape[0]), "n_test": int(Y_test.shape[0]),
                     "groups": [groups, all_groups], "candidates": [cands, all_cands]}  # fmt: skip
    return out


STAGES = {"write": _write, "prepare": _prepare, "decode": _decode, "pca": _pca, "ridge": _ridge}


def _child(stage: str, args) -> None:
    t0 = time.perf_counter()
    result = STAGES[stage](args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"result": result, "seconds": time.perf_counter() - t0, "peak_rss": peak}))


def _flags(args) -> list[str]:
    return ["--root", args.root, "--brain-voxels", str(args.brain_voxels),
            "--written-sessions", str(args.written_sessions), "--ridge-blocks",
            ",".join(map(str, args.ridge_blocks)),
            "--c-targets", str(args.c_targets), "--unet-layers", ",".join(args.unet_layers),
            "--pca-spaces", ",".join(args.pca_spaces), "--device", args.device]  # fmt: skip


def _report(args, runs: dict) -> None:
    gb = 2**30
    print(f"\n{'stage':<10}{'wall s':>10}{'peak RSS GB':>13}{'disk added GB':>15}")
    for stage, r in runs.items():
        print(f"{stage:<10}{r['seconds']:>10.0f}{r['peak_rss'] / gb:>13.2f}{r['disk'] / gb:>15.2f}")
    if "prepare" in runs:
        for name, info in runs["prepare"]["result"].items():
            print(f"prepare {name}: {info['voxels']} voxels, {info['n_train']} train trials, "
                  f"{info['n_test']} test images, {info['seconds']:.0f} s")  # fmt: skip
    if "decode" in runs:
        d = runs["decode"]["result"]
        c = d["text_embeddings"]
        full_c = c["seconds"] * 59136 / c["targets"]
        print(f"decode: z (6,400 targets) {d['image_latents']['seconds']:.0f} s; c "
              f"{c['targets']} of 59,136 targets {c['seconds']:.0f} s → all of c ≈ "
              f"{full_c / 60:.0f} min (scaled by targets)")  # fmt: skip
    total = 0.0
    if "pca" in runs:
        p = runs["pca"]["result"]
        for k, v in p.items():
            print(f"PCA {k}: {v['features']:,} features → {v['components']} components, "
                  f"{v['seconds']:.0f} s")  # fmt: skip
        # seconds = fixed (eigendecomposition, n_train³) + rate × n_train² × n_features
        fit = [(v["n_train_images"] ** 2 * v["features"], v["seconds"])
               for v in p.values() if v["features"] > 6400]  # fmt: skip
        if len(fit) >= 2:
            import numpy as np

            x, y = np.array(fit, dtype=float).T
            rate, fixed = np.polyfit(x, y, 1)
            n = next(iter(p.values()))["n_train_images"]
            # c; zc at 3 noise levels (last stage) and 2 more stages; 5 layers × 3 stages
            sets = [59136] + [16384] * 5 + [math.prod(s) for s in UNET.values()] * 3
            pca_s = sum(fixed + rate * n**2 * m for m in sets)
            total += pca_s
            print(f"PCA of every feature set of the paper ({len(sets)} sets; fit: {fixed:.0f} s "
                  f"+ {rate:.2e} s × n_train² × features): ≈ {pca_s / 3600:.1f} h")  # fmt: skip
    if "ridge" in runs:
        from brainldm.encoding import default_voxel_batch_size

        # analyses (i)-(iv) as the pipeline builds them: singles z, c, zc; pairs z + zc at 3
        # noise levels and 2 more stages (5 joint, 5 more singles); 5 layers × 3 stages.
        n_single, n_joint = 3 + 5 + 15 - 1, 5  # zc at the middle level/last stage is shared
        est = {}
        for name, v in runs["ridge"]["result"].items():
            (n1, t1), (n2, t2) = v["blocks"][0], v["blocks"][-1]
            rate = (t2 - t1) / (n2 - n1) if n2 != n1 else t2 / n2  # seconds per voxel
            fixed = max(t1 - rate * n1, 0.0)  # seconds per block: the decompositions
            (g, g_all), (c, c_all) = v["groups"], v["candidates"]
            # decompositions scale with the alpha groups; per voxel, Q^T Y per group and
            # the validation residuals per candidate
            fixed_all, rate_all = fixed * g_all / g, rate * (g_all + c_all) / (g + c)
            n_vox = v["n_voxels"]
            size = default_voxel_batch_size(v["n_train"], v["n_test"], v["n_features"])
            n_blocks = math.ceil(n_vox / size)
            est[name] = n_blocks * fixed_all + n_vox * rate_all
            sizes = ", ".join(f"{n:,} voxels {t:.0f} s" for n, t in v["blocks"])
            print(f"ridge {name} ({v['n_features']:,} features, {v['cv_strategy']}): {sizes} → "
                  f"{fixed:.0f} s per block + {rate * 1e3:.1f} ms per voxel")  # fmt: skip
            if g != g_all:
                print(f"  measured {g} of {g_all} alpha groups ({c} of {c_all} candidates); "
                      f"whole grid ≈ {fixed_all:.0f} s per block + {rate_all * 1e3:.1f} ms "
                      "per voxel (scaled by groups, and groups + candidates)")  # fmt: skip
            print(f"  one model, {n_vox:,} voxels in {n_blocks} blocks of {size:,} (default "
                  f"budget): ≈ {est[name] / 3600:.1f} h = {est[name] / n_vox * 1e3:.1f} ms per "
                  "(model × voxel)")  # fmt: skip
        joint = next(t for k, t in est.items() if "+" in k)
        ridge_s = n_single * est["z"] + n_joint * joint
        total += ridge_s
        print(f"ridge of every model ({n_single} single, {n_joint} joint): "
              f"≈ {ridge_s / 3600:.0f} h")  # fmt: skip
    if total:
        print(
            f"encoding analyses of the whole subject on this machine: ≈ {total / 3600:.1f} h "
            "(extrapolated from the measured shares above)"
        )
    peak = max(r["peak_rss"] for s, r in runs.items() if s != "write") if len(runs) > 1 else 0
    print(f"peak RSS of prepare/decode/encode: {peak / gb:.2f} GB (goal ≤ 16 GB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="working folder (tens of GB)")
    parser.add_argument("--brain-voxels", type=int, default=250_000)
    parser.add_argument("--written-sessions", type=int, default=2)
    parser.add_argument("--ridge-blocks", default="1024,6144",
                        type=lambda s: [int(x) for x in s.split(",") if x])  # fmt: skip
    parser.add_argument("--c-targets", type=int, default=6144)
    parser.add_argument("--unet-layers", default="mid_block,down_blocks.1",
                        type=lambda s: [x for x in s.split(",") if x])  # fmt: skip
    parser.add_argument("--pca-spaces", default=None,
                        type=lambda s: [x for x in s.split(",") if x])  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stages", default="write,prepare,decode,pca,ridge")
    parser.add_argument("--_stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = sorted(set(args.unet_layers) - set(UNET))
    if unknown:
        parser.error(f"--unet-layers {unknown} unknown; allowed: {sorted(UNET)}")
    if args.pca_spaces is None:
        from brainldm.features import zc_store_name

        args.pca_spaces = ["c", zc_store_name(0.5, 1.0)]
        args.pca_spaces += [zc_store_name(0.5, 1.0, layer) for layer in args.unet_layers]
    if args._stage:
        _child(args._stage, args)
        return
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    runs = {}
    for stage in [s for s in args.stages.split(",") if s]:
        before = _bytes(root)
        proc = subprocess.run([sys.executable, __file__, "--_stage", stage, *_flags(args)],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode:
            sys.exit(f"stage {stage} failed:\n{proc.stderr[-4000:]}")
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        run["disk"] = _bytes(root) - before
        (root / f"{stage}.json").write_text(json.dumps(run, indent=1))
        runs[stage] = run
        print(f"{stage}: {run['seconds']:.0f} s, peak RSS {run['peak_rss'] / 2**30:.2f} GB",
              flush=True)  # fmt: skip
    for stage in STAGES:  # stages run before, for the report
        if stage not in runs and (root / f"{stage}.json").exists():
            runs[stage] = json.loads((root / f"{stage}.json").read_text())
    _report(args, {s: runs[s] for s in STAGES if s in runs})
    if shutil.disk_usage(root).free < 5 * 2**30:
        print("warning: under 5 GB of disk left")


if __name__ == "__main__":
    main()
