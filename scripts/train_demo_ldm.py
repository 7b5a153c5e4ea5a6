"""Train the demo's tiny LDM and write its weights into the package.

    .venv/bin/python scripts/train_demo_ldm.py            # -> src/brainldm/testing/demo_ldm/

Runs :func:`brainldm.testing.train_demo_ldm` with the shipped recipe
(:data:`brainldm.testing.DEMO_LDM_RECIPE`): seeded, on synthetic stimuli only,
about 70 minutes on one CPU core. The weights are stored as float16 (the
model is loaded back as float32), without the CLIP tokenizer files, which
:func:`brainldm.ldm.load_ldm` rebuilds from ``open-clip-torch``. ``training.json``
records the recipe, the final losses and the time taken.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import platform
import shutil
import time
from pathlib import Path


def main(argv=None) -> int:
    """Train, then write the weights and ``training.json``; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None,
                        help="folder to write (default: the package's demo_ldm/)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: the shipped weights; another count can "
                             "change the last bits)")  # fmt: skip
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override an argument, e.g. unet_steps=100")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    from brainldm.ldm import save_ldm
    from brainldm.testing import DEMO_LDM_DIR, DEMO_LDM_RECIPE, train_demo_ldm

    torch.set_num_threads(args.threads)
    recipe = dict(DEMO_LDM_RECIPE)
    for item in args.set:
        key, _, value = item.partition("=")
        recipe[key] = type(recipe[key])(value) if key in recipe else json.loads(value)
    out = Path(args.out) if args.out else DEMO_LDM_DIR
    cpu0, wall0 = time.process_time(), time.perf_counter()
    ldm, losses = train_demo_ldm(**recipe, log_every=200)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0

    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_ldm(ldm.to(dtype=torch.float16), tmp)
    shutil.rmtree(tmp / "tokenizer")
    bound = inspect.signature(train_demo_ldm).bind(**recipe)
    bound.apply_defaults()
    record = {
        "function": "brainldm.testing.train_demo_ldm",
        "arguments": {k: v for k, v in bound.arguments.items() if k != "log_every"},
        "final_loss": {k: float(sum(v[-200:]) / max(1, len(v[-200:]))) for k, v in losses.items()},
        "cpu_seconds": round(cpu),
        "wall_seconds": round(wall),
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "stored_dtype": "float16",
    }
    (tmp / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB) in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
