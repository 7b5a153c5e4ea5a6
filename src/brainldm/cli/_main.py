"""``brainldm`` subcommands. No science here: each one parses, calls the library, reports."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def _int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not values:  # "" or "," must not fall back to a default silently
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 1,2,5,7, got {text!r}"
        )
    return values


def _str_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _print_summary(summary: dict, out: Path) -> None:
    from brainldm.pipeline import RunLayout

    for key, name in summary.get("prepare", {}).items():
        print(f"  prepared {key}: {name}")
    for subject, info in summary.get("decode", {}).items():
        r = info["per_image_r"]
        name = RunLayout.subject_name(subject)
        r_z, r_c = r["image_latents"], r["text_embeddings"]
        print(f"  {name} decoded: per-image r z {r_z:.3f}, c {r_c:.3f}")
    if "report" in summary:
        print(f"report: {out / summary['report']['report']}")


def _cmd_demo(args: argparse.Namespace) -> int:
    from brainldm.pipeline import run_demo

    out = Path(args.out)
    summary = run_demo(out, subjects=args.subjects, progress=not args.quiet, force=args.force,
                       stages=args.stages)  # fmt: skip
    print(f"demo run in {out} (synthetic NSD, tiny LDM trained on synthetic images)")
    _print_summary(summary, out)
    return 0


def _parse_set(items: list[str]) -> dict:
    """``section.key=value`` pairs → nested overrides; values parsed as TOML literals."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    overrides: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise ValueError(
                f"--set {item!r}: expected section.key=value, e.g. data.subjects=[1,2]"
            )
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare string
        overrides.setdefault(section, {})[name] = value
    return overrides


def _cmd_run(args: argparse.Namespace) -> int:
    from brainldm.config import run_config_to_toml
    from brainldm.pipeline import run_pipeline

    config = _run_config(args)
    if args.dry_run:
        print(run_config_to_toml(config))
        return 0
    out = Path(args.out)
    summary = run_pipeline(config, out, stages=args.stages, force=args.force,
                           progress=not args.quiet)  # fmt: skip
    print(f"run finished in {out}")
    _print_summary(summary, out)
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from brainldm.pipeline import redraw_figures

    out = Path(args.run)
    summary = redraw_figures(out, subject=args.subject, progress=not args.quiet)
    figures = summary.get("figures", {}).get("figures", {})
    print(f"{len(figures)} figures redrawn in {out / 'figures'}: {', '.join(figures) or 'none'}")
    _print_summary(summary, out)
    return 0


def _cmd_seeds(args: argparse.Namespace) -> int:
    from brainldm.pipeline import run_seed_checks

    out = run_seed_checks(args.run, args.seeds, progress=not args.quiet)
    print(f"seeds {out['seeds']} compared:")
    for name, path in out["tables"].items():
        print(f"  {name}: {path}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from brainldm.testing import write_fake_nsd

    fake = write_fake_nsd(
        args.root,
        subjects=args.subjects,
        n_sessions=args.sessions,
        n_trials_per_session=args.trials_per_session,
        volume_shape=tuple(args.volume_shape),
        image_size=args.image_size,
        random_state=args.seed,
    )
    print(f"synthetic NSD for subjects {list(fake.subjects)} written to {fake.root}")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from brainldm.nsd import NSDLayout, prepare_subject

    layout = NSDLayout.from_root(args.nsd_root, annotations_dir=args.annotations_dir)
    for subject in args.subjects:
        split, path = prepare_subject(
            layout,
            subject,
            args.out,
            rois=args.rois,
            atlas=args.atlas,
            split=args.split,
            sessions=args.session_list,
            fmt=args.format,
            zscore=args.zscore,
            order=args.order,
            progress=not args.quiet,
        )
        print(split.summary())
        print(f"  -> {path}")
    return 0


def _cmd_extract_features(args: argparse.Namespace) -> int:
    from functools import partial

    import numpy as np

    from brainldm.config import FeaturesConfig
    from brainldm.features import extract_features
    from brainldm.ldm import load_ldm
    from brainldm.nsd import (
        NSDLayout,
        load_captions,
        load_stim_info,
        load_stimulus_images,
        load_trials,
    )

    # checked before any work, with the messages of a run config ("features.z_size=...")
    FeaturesConfig(z_size=args.z_size, z_posterior=args.z_posterior, batch_size=args.batch_size)
    layout = NSDLayout.from_root(args.nsd_root, annotations_dir=args.annotations_dir)
    ids = np.unique(np.concatenate([load_trials(layout, s).nsd_ids for s in args.subjects]))
    ldm = load_ldm(args.model, device=args.device)
    info = load_stim_info(layout)
    stores = extract_features(
        ldm,
        args.out,
        ids,
        images=partial(load_stimulus_images, layout),
        captions=partial(load_captions, layout, stim_info=info),
        features=args.features,
        z_size=args.z_size,
        z_posterior=args.z_posterior,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    for name, store in stores.items():
        print(f"{name}: {len(store)} images in {store.path}")
    return 0


def _run_config(args: argparse.Namespace):
    """The run config of ``--preset``/``config`` with ``--set`` overrides."""
    from brainldm.config import load_run_config, make_run_config

    overrides = _parse_set(args.set)
    if getattr(args, "subjects", None) is not None:
        overrides.setdefault("data", {})["subjects"] = args.subjects
    if getattr(args, "config", None) in (None, ""):
        return make_run_config(args.preset, overrides)
    return load_run_config(args.config, overrides)


def _cmd_decode(args: argparse.Namespace) -> int:
    from brainldm.decoding import fit_decoders
    from brainldm.features import FeatureStore
    from brainldm.nsd import SubjectSplit
    from brainldm.pipeline import RunLayout

    config = _run_config(args)
    split = SubjectSplit.load(args.prepared)
    stores = {"image_latents": FeatureStore(args.features, "z"),
              "text_embeddings": FeatureStore(args.features, "c")}  # fmt: skip
    rois = {"image_latents": args.z_roi or config.data.z_roi,
            "text_embeddings": args.c_roi or config.data.c_roi}  # fmt: skip
    decoders = fit_decoders(split, stores, rois=rois, config=config.decoding,
                            progress=not args.quiet)  # fmt: skip
    decoded = decoders.decode(split, stores)
    path = decoded.save(args.out)
    r = decoded.mean_scores()
    print(f"{RunLayout.subject_name(split.subject)}: {len(decoded)} test images decoded -> {path}; "
          "per-image r "
          f"z {r['image_latents']:.3f}, c {r['text_embeddings']:.3f}")  # fmt: skip
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from brainldm.config import ReconstructionConfig
    from brainldm.decoding import DecodedLatents
    from brainldm.ldm import load_ldm
    from brainldm.reconstruction import reconstruct

    decoded = DecodedLatents.load(args.decoded).select(args.start, args.stop)
    config = ReconstructionConfig(
        strength=args.strength,
        guidance_scale=args.guidance_scale,
        n_samples=args.n_samples,
        num_inference_steps=args.steps,
        seed=args.seed,
        timesteps=args.timesteps,
    )
    ldm = load_ldm(args.model, device=args.device)
    index = reconstruct(
        ldm, decoded.image_latents, decoded.text_embeddings, decoded.nsd_ids, args.out,
        conditions=args.conditions, config=config, batch_size=args.batch_size,
        progress=not args.quiet,
    )  # fmt: skip
    print(f"{len(index)} images of {len(decoded)} test images in {args.out}")
    return 0


def _size(text: str) -> float:
    """``500k``, ``2M``, ``1G`` (bytes per second) → a number."""
    units = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
    number, unit = text.strip().lower().rstrip("b"), ""
    if number and number[-1] in units:
        number, unit = number[:-1], number[-1]
    try:
        value = float(number) * units[unit]
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a rate such as 500k or 2M, got {text!r}")
    return value


def _nsd_selection(args: argparse.Namespace) -> dict:
    from brainldm.fetch import parse_sessions

    sessions = None if args.sessions is None else parse_sessions(args.sessions)
    return dict(subjects=args.subjects, what=args.what, space=args.space, fmt=args.format,
                sessions=sessions)  # fmt: skip


def _cmd_fetch_nsd(args: argparse.Namespace) -> int:
    from brainldm.fetch import fetch_nsd

    fetch_nsd(args.root, dry_run=args.dry_run, endpoint_url=args.endpoint_url,
              workers=args.workers, coco_url=args.coco_url, limit_rate=args.limit_rate,
              progress=not args.quiet, force=args.force, echo=print,
              **_nsd_selection(args))  # fmt: skip
    return 0


def _cmd_fetch_weights(args: argparse.Namespace) -> int:
    from brainldm.fetch import fetch_weights

    fetch_weights(args.to, args.only, dry_run=args.dry_run, hf_endpoint=args.hf_endpoint,
                  revision=args.revision, http_mirror=args.http_mirror, workers=args.workers,
                  limit_rate=args.limit_rate, progress=not args.quiet, force=args.force,
                  echo=print)  # fmt: skip
    return 0


def _cmd_fetch_status(args: argparse.Namespace) -> int:
    from brainldm.fetch import fetch_status, status_table

    rows = fetch_status(args.root, args.weights, only=args.only, hashes=args.hashes,
                        **(_nsd_selection(args) if args.root is not None else {}))  # fmt: skip
    print(status_table(rows))
    return 0 if all(r.ok for r in rows) else 1


def _add_fetch(sub) -> None:
    from brainldm.fetch import NSD_SPACES, NSD_WHAT, weight_names

    fetch = sub.add_parser("fetch", help="download NSD, COCO captions and the weights "
                           "(the only command that downloads)")  # fmt: skip
    kinds = fetch.add_subparsers(dest="fetch_command", required=True)

    def selection(p, required: bool) -> None:
        p.add_argument("--subjects", type=_int_list, required=required,
                       default=None if required else [1, 2, 5, 7],
                       help="NSD subjects, e.g. 1,2,5,7" +
                       ("" if required else " (default: 1,2,5,7)"))  # fmt: skip
        p.add_argument("--sessions", default=None,
                       help="beta sessions, e.g. 1-37 or 1,2,5-7 (default: all of each subject)")
        p.add_argument("--space", default="func1pt8mm", help=" or ".join(NSD_SPACES))
        p.add_argument("--format", default=None,
                       help="beta format of func1pt8mm: hdf5 (default) or nifti")  # fmt: skip
        p.add_argument("--what", type=_str_list, default=None,
                       help=f"parts to fetch, default all: {','.join(NSD_WHAT)}")  # fmt: skip

    def transfer(p, workers: int) -> None:
        p.add_argument("--dry-run", action="store_true",
                       help="list every file with its size and the total; write nothing")
        p.add_argument("--workers", type=int, default=workers, help="parallel transfers")
        p.add_argument("--limit-rate", type=_size, default=None,
                       help="maximum bytes per second of each transfer, e.g. 20M")  # fmt: skip
        p.add_argument("--force", action="store_true",
                       help="replace files already in place whose size differs from the "
                       "remote one (default: refuse, before any download)")  # fmt: skip

    nsd = kinds.add_parser("nsd", help="the NSD files brainldm reads, from NSD's public S3 "
                           "bucket (anonymous), and COCO captions")  # fmt: skip
    nsd.add_argument("--root", required=True, help="local NSD root (mirrors the bucket)")
    selection(nsd, required=True)
    transfer(nsd, workers=8)
    nsd.add_argument("--endpoint-url", default=None,
                     help="S3 endpoint (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, AWS)")
    from brainldm.fetch import COCO_ANNOTATIONS_URL

    nsd.add_argument("--coco-url", default=COCO_ANNOTATIONS_URL,
                     help="COCO's annotations_trainval2017.zip")  # fmt: skip
    nsd.set_defaults(func=_cmd_fetch_nsd)

    weights = kinds.add_parser("weights", help="Stable Diffusion v1.4 and the evaluation "
                               "networks, verified")  # fmt: skip
    weights.add_argument("--to", required=True,
                         help="weights folder (evaluation.weights_dir; Stable Diffusion goes to "
                         "its stable-diffusion-v1-4/, features.model)")  # fmt: skip
    weights.add_argument("--only", type=_str_list, default=None,
                         help=f"default all: {','.join(weight_names())}")  # fmt: skip
    weights.add_argument("--hf-endpoint", default=None,
                         help="Hugging Face endpoint (default: huggingface_hub's)")
    weights.add_argument("--revision", default="main", help="Hugging Face revision")
    weights.add_argument("--http-mirror", default=None,
                         help="base URL replacing the host of the non-Hugging Face sources")
    transfer(weights, workers=4)
    weights.set_defaults(func=_cmd_fetch_weights)

    status = kinds.add_parser("status", help="which files are present, missing or corrupt "
                              "(exit 1 if any is missing or corrupt); offline")  # fmt: skip
    status.add_argument("--root", default=None, help="local NSD root")
    status.add_argument("--weights", default=None, help="weights folder")
    selection(status, required=False)
    status.add_argument("--only", type=_str_list, default=None, help="which weights")
    status.add_argument("--hashes", action="store_true",
                        help="also read every file and check its MD5/SHA-256 (slow)")
    status.set_defaults(func=_cmd_fetch_status)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``brainldm`` (one subparser per command)."""
    from brainldm import __version__
    from brainldm.config import FeaturesConfig, ReconstructionConfig

    parser = argparse.ArgumentParser(
        prog="brainldm",
        description="Images from brain activity with a latent diffusion model "
        "(Takagi & Nishimoto, CVPR 2023).",
    )
    parser.add_argument("--version", action="version", version=f"brainldm {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on error")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="every stage on the embedded synthetic NSD")
    demo.add_argument("--out", default="brainldm_demo", help="output folder")
    demo.add_argument("--subjects", type=_int_list, default=[1, 2], help="e.g. 1,2")
    demo.add_argument("--force", type=_str_list, default=[],
                      help="finished stages to remove and redo")  # fmt: skip
    from brainldm.pipeline import STAGES

    demo.add_argument("--stages", type=_str_list, default=list(STAGES))
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser("run", help="the whole analysis from a TOML config")
    run.add_argument("config", nargs="?", default=None, help="TOML run config")
    run.add_argument("--preset", default="takagi2023", help="takagi2023, recommended or demo")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a setting, e.g. --set data.nsd_root='\"/data/nsd\"'",
    )
    run.add_argument("--subjects", type=_int_list, default=None, help="e.g. 1,2,5,7")
    run.add_argument("--out", default="brainldm_run", help="output folder")
    run.add_argument("--stages", type=_str_list, default=list(STAGES),
                     help="stages to run; finished ones are skipped, never removed")  # fmt: skip
    run.add_argument("--force", type=_str_list, default=[],
                     help="finished stages to remove and redo (with the finished stages after "
                     "them); without it finished work is never removed")  # fmt: skip
    run.add_argument("--dry-run", action="store_true", help="print the resolved config")
    run.set_defaults(func=_cmd_run)

    figs = sub.add_parser("figures", help="redraw the paper's Figures 3-9 and the report of a "
                          "finished run (nothing is recomputed)")  # fmt: skip
    figs.add_argument("run", help="run folder (brainldm run --out / brainldm demo --out)")
    figs.add_argument("--subject", type=int, default=None,
                      help="subject of Figures 3 and 6-9 (default: the run's figures.subject)")  # fmt: skip
    figs.set_defaults(func=_cmd_figures)

    seeds = sub.add_parser("seeds", help="rerun reconstruction and encoding of a finished run "
                           "with other random seeds and compare (the paper's seed check)")  # fmt: skip
    seeds.add_argument("run", help="a finished run folder")
    seeds.add_argument("--seeds", type=_int_list, required=True, help="other seeds, e.g. 1,2")
    seeds.set_defaults(func=_cmd_seeds)

    from brainldm.cli._rate import add_rate_subcommands

    add_rate_subcommands(sub)

    _add_fetch(sub)

    sim = sub.add_parser("simulate", help="write a synthetic NSD in the real formats")
    sim.add_argument("root", help="folder to write the NSD tree into")
    sim.add_argument("--subjects", type=_int_list, default=[1])
    sim.add_argument("--sessions", type=int, default=3)
    sim.add_argument("--trials-per-session", type=int, default=30)
    sim.add_argument("--volume-shape", type=int, nargs=3, default=[10, 12, 8], metavar="N")
    sim.add_argument("--image-size", type=int, default=64)
    sim.add_argument("--seed", type=int, default=0)
    sim.set_defaults(func=_cmd_simulate)

    prep = sub.add_parser("prepare", help="read, mask and split a subject's NSD betas")
    prep.add_argument("--nsd-root", default=None, help="NSD root (else $BRAINLDM_NSD_ROOT)")
    prep.add_argument("--annotations-dir", default=None, help="COCO captions folder")
    prep.add_argument("--subjects", type=_int_list, required=True, help="e.g. 1,2,5,7")
    prep.add_argument("--out", required=True, help="output folder")
    prep.add_argument("--rois", type=_str_list, default=["early", "ventral"])
    prep.add_argument("--atlas", default="streams")
    prep.add_argument("--split", default="takagi2023", help="takagi2023 or modern")
    prep.add_argument("--sessions", dest="session_list", type=_int_list, default=None)
    prep.add_argument("--format", default="hdf5", help="hdf5 or nifti")
    prep.add_argument("--zscore", action="store_true", help="z-score voxels per session")
    prep.add_argument("--order", default="first_presentation", help="or sorted")
    prep.set_defaults(func=_cmd_prepare)

    feat = sub.add_parser("extract-features", help="z and c of every image a subject saw")
    feat.add_argument("--nsd-root", default=None, help="NSD root (else $BRAINLDM_NSD_ROOT)")
    feat.add_argument("--annotations-dir", default=None, help="COCO captions folder")
    feat.add_argument("--subjects", type=_int_list, required=True)
    feat.add_argument("--model", required=True, help="SD v1.x diffusers folder or .ckpt")
    feat.add_argument("--out", required=True, help="feature store folder")
    feat.add_argument("--features", type=_str_list, default=["z", "c"])
    feat.add_argument("--z-size", type=int, default=FeaturesConfig.z_size,
                      help="image side before the VAE: 320 (the paper's, z of 4 × 40 × 40) "
                      "or 448 (its robustness check, 4 × 56 × 56)")  # fmt: skip
    feat.add_argument("--z-posterior", default=FeaturesConfig.z_posterior,
                      help="sample (the paper's) or mean")  # fmt: skip
    feat.add_argument("--batch-size", type=int, default=FeaturesConfig.batch_size)
    feat.add_argument("--device", default="cpu")
    feat.set_defaults(func=_cmd_extract_features)

    dec = sub.add_parser("decode", help="fit the decoders (early → z, ventral → c), decode "
                         "the test images")  # fmt: skip
    dec.add_argument(
        "--prepared",
        required=True,
        help="a subject's prepared split (.h5 written by `brainldm prepare`)",
    )
    dec.add_argument(
        "--features",
        required=True,
        help="feature stores with z/ and c/ (`brainldm extract-features --out`)",
    )
    dec.add_argument("--out", required=True, help="decoded latents file (.npz)")
    dec.add_argument(
        "--preset",
        default="takagi2023",
        help="settings of [decoding] and the ROIs: takagi2023, recommended or demo",
    )
    dec.add_argument("config", nargs="?", default=None, help="TOML run config (else --preset)")
    dec.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a setting, e.g. --set decoding.alphas=[1,10,100]")  # fmt: skip
    dec.add_argument("--z-roi", default=None, help="ROI → z (default: data.z_roi)")
    dec.add_argument("--c-roi", default=None, help="ROI → c (default: data.c_roi)")
    dec.set_defaults(func=_cmd_decode)

    paper = ReconstructionConfig()  # the CLI's defaults are the config's (the paper's)
    rec = sub.add_parser("reconstruct", help="images from decoded z and c")
    rec.add_argument("--model", required=True, help="SD v1.x diffusers folder or .ckpt")
    rec.add_argument("--decoded", required=True,
                     help="decoded latents (`brainldm decode --out`, or a run's "
                     "decode/subjNN_decoded.npz)")  # fmt: skip
    rec.add_argument("--out", required=True)
    rec.add_argument("--conditions", type=_str_list, default=["zc", "z", "c"])
    rec.add_argument("--n-samples", type=int, default=paper.n_samples)
    rec.add_argument("--steps", type=int, default=paper.num_inference_steps)
    rec.add_argument("--strength", type=float, default=paper.strength)
    rec.add_argument("--guidance-scale", type=float, default=paper.guidance_scale)
    rec.add_argument("--seed", type=int, default=paper.seed)
    rec.add_argument("--timesteps", default=paper.timesteps, help="compvis or diffusers")
    rec.add_argument("--start", type=int, default=None, help="first row (for sharding)")
    rec.add_argument("--stop", type=int, default=None, help="row after the last")
    rec.add_argument("--batch-size", type=int, default=4)
    rec.add_argument("--device", default="cpu")
    rec.set_defaults(func=_cmd_reconstruct)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``brainldm`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.INFO if args.verbose else logging.WARNING)
    if args.verbose > 1:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        if args.command != "fetch" or args.debug:
            raise
        print(f"brainldm {args.command}: interrupted; run the command again to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    except Exception as err:  # one line for the user; --debug for the traceback
        if args.debug:
            raise
        lines = [" ".join(line.split()) for line in str(err).splitlines()]
        message = "\n  ".join(line for line in lines if line) or type(err).__name__
        print(f"brainldm {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
