"""Benchmark: reconstruction throughput on the full-size SD v1.4 architecture (random weights).

Three ways to make the same z+c images, each in its own process, in one run:

- ``brainldm``: :func:`brainldm.reconstruction.reconstruct`, model loaded once,
  images batched (``batch_invariant=True``, the default, and ``False``);
- ``(a) diffusers loop``: ``StableDiffusionImg2ImgPipeline`` called image by
  image with the model kept loaded (the same recipe: decode z, resize to 512,
  encode, img2img with c and the empty prompt);
- ``(b) seed's way``: one process per image that loads the model from disk,
  makes one image and exits (as the authors' script).

All use the diffusers timestep convention and the posterior mean, so (a) can
produce the very same images; the script checks they agree (max |Δ| grey level).
Times exclude the one model load of brainldm and (a), and include every load
of (b). Peak memory is each process's maximum resident set size.

Usage: python benchmarks/reconstruction.py [--images 2] [--steps 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _inputs(n_images: int, dim: int):
    import numpy as np

    rng = np.random.default_rng(0)
    z = rng.standard_normal((n_images, 4, 40, 40)).astype(np.float32) * 0.8
    c = rng.standard_normal((n_images, 77, dim)).astype(np.float32)
    return z, c, list(range(100, 100 + n_images))


def _config(steps: int):
    from brainldm.config import ReconstructionConfig

    return ReconstructionConfig(
        num_inference_steps=steps, n_samples=1, timesteps="diffusers", init_posterior="mean"
    )


def _load(args):
    import torch

    from brainldm.ldm import load_ldm

    dtype = torch.float16 if args.fp16 else torch.float32
    return load_ldm(args.model, device=args.device, dtype=dtype)


def run_brainldm(args) -> dict:
    from brainldm.reconstruction import reconstruct

    ldm = _load(args)
    z, c, ids = _inputs(args.images, ldm.text_encoder.config.hidden_size)
    kwargs = dict(conditions=("zc",), config=_config(args.steps), batch_size=args.batch_size,
                  batch_invariant=not args.batched)  # fmt: skip
    reconstruct(ldm, z[:1], c[:1], ids[:1], Path(args.out).with_suffix(".warmup"), **kwargs)
    t0 = time.perf_counter()
    reconstruct(ldm, z, c, ids, args.out, **kwargs)
    return {"seconds": time.perf_counter() - t0, "peak_gb": _peak_gb()}


def run_diffusers_loop(args) -> dict:
    import numpy as np
    import torch
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline
    from PIL import Image

    from brainldm.features import latents_to_init_latents
    from brainldm.ldm._sampling import encode_prompt_embeddings

    ldm = _load(args)
    pipe = StableDiffusionImg2ImgPipeline(
        vae=ldm.vae, text_encoder=ldm.text_encoder, tokenizer=ldm.tokenizer, unet=ldm.unet,
        scheduler=DDIMScheduler.from_config(ldm.scheduler_config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    z, c, ids = _inputs(args.images, ldm.text_encoder.config.hidden_size)
    from brainldm.reconstruction import sample_seed

    out = Path(args.out) / "zc"
    out.mkdir(parents=True, exist_ok=True)
    uncond = encode_prompt_embeddings(ldm, [""])

    def one(k: int, nsd_id: int) -> np.ndarray:
        zk = torch.from_numpy(z[k : k + 1]).to(ldm.device, ldm.dtype)
        init, _ = latents_to_init_latents(ldm, zk)
        ck = torch.from_numpy(c[k : k + 1]).to(ldm.device, ldm.dtype)
        image = pipe(
            image=init, prompt_embeds=ck, negative_prompt_embeds=uncond, strength=0.8,
            num_inference_steps=args.steps, guidance_scale=5.0, eta=0.0, output_type="np",
            generator=torch.Generator().manual_seed(sample_seed(42, nsd_id, 0)),
        ).images[0]  # fmt: skip
        return (image * 255).round().clip(0, 255).astype(np.uint8)

    one(0, ids[0])  # warm-up, not timed
    t0 = time.perf_counter()
    for k, nsd_id in enumerate(ids):
        Image.fromarray(one(k, nsd_id)).save(out / f"{nsd_id:06d}_00.png")
    return {"seconds": time.perf_counter() - t0, "peak_gb": _peak_gb()}


def _child(kind: str, args, **extra) -> dict:
    cmd = [sys.executable, __file__, "--_run", kind, "--model", str(args.model),
           "--images", str(extra.get("images", args.images)), "--steps", str(args.steps),
           "--out", str(extra["out"]), "--device", args.device,
           "--batch-size", str(args.batch_size)]  # fmt: skip
    cmd += ["--batched"] if extra.get("batched") else []
    cmd += ["--fp16"] if args.fp16 else []
    cmd += ["--_first", str(extra["first"])] if "first" in extra else []
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_seed_way(args) -> dict:
    """One process per image, each loading the model (timed from outside)."""
    from brainldm.reconstruction import reconstruct

    t_start = time.perf_counter()
    ldm = _load(args)
    z, c, ids = _inputs(args._total, ldm.text_encoder.config.hidden_size)
    k = args._first
    reconstruct(ldm, z[k : k + 1], c[k : k + 1], ids[k : k + 1], args.out, conditions=("zc",),
                config=_config(args.steps))  # fmt: skip
    return {"seconds": time.perf_counter() - t_start, "peak_gb": _peak_gb()}


def _max_diff(a: Path, b: Path) -> int:
    import numpy as np
    from PIL import Image

    worst = 0
    for p in sorted((a / "zc").glob("*.png")):
        x = np.asarray(Image.open(p)).astype(int)
        y = np.asarray(Image.open(b / "zc" / p.name)).astype(int)
        worst = max(worst, int(np.abs(x - y).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="DDIM steps of a full trajectory")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--model", type=Path, default=Path("/tmp/brainldm_bench_sd14"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--batched", action="store_true")
    parser.add_argument("--_run", help=argparse.SUPPRESS)
    parser.add_argument("--_first", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._run:
        args._total = args.images
        fn = {"brainldm": run_brainldm, "diffusers": run_diffusers_loop, "seed": run_seed_way}
        print(json.dumps(fn[args._run](args)))
        return
    if not (args.model / "unet" / "config.json").exists():
        print(f"building the SD v1.4 architecture (random weights) in {args.model} ...", flush=True)
        from brainldm.ldm import make_sd_v1_architecture, save_ldm

        save_ldm(make_sd_v1_architecture(seed=0), args.model)
    work = Path(tempfile.mkdtemp(prefix="brainldm_bench_recon_"))
    n_unet = int(args.steps * 0.8)
    print(f"{args.images} images, {args.steps}-step schedule at strength 0.8 ({n_unet} U-Net "
          f"calls with guidance), 512 px, device {args.device}{' fp16' if args.fp16 else ''}")  # fmt: skip
    results = {}
    results["brainldm"] = _child("brainldm", args, out=work / "ours")
    results["brainldm, batched"] = _child("brainldm", args, out=work / "ours_b", batched=True)
    results["(a) diffusers loop"] = _child("diffusers", args, out=work / "loop")
    seed_runs = [_child("seed", args, out=work / "seed", first=k) for k in range(args.images)]
    results["(b) one process per image"] = {
        "seconds": sum(r["seconds"] for r in seed_runs),
        "peak_gb": max(r["peak_gb"] for r in seed_runs),
    }
    base = results["brainldm"]["seconds"]
    print(f"\n{'method':<28}{'s/image':>9}{'images/s':>10}{'brainldm speed-up':>19}{'peak GB':>9}")
    for name, r in results.items():
        print(f"{name:<28}{r['seconds'] / args.images:>9.1f}{args.images / r['seconds']:>10.3f}"
              f"{r['seconds'] / base:>18.2f}x{r['peak_gb']:>9.1f}")  # fmt: skip
    print("\nsame images? max |Δ| grey level vs brainldm: "
          f"batched {_max_diff(work / 'ours', work / 'ours_b')}, "
          f"(a) {_max_diff(work / 'ours', work / 'loop')}, "
          f"(b) {_max_diff(work / 'ours', work / 'seed')}")  # fmt: skip
    print("speed-up = method time / brainldm time (goals: >= 1x vs (a) on CPU, >= 3x vs (b))")


if __name__ == "__main__":
    main()
