"""``brainldm rate serve`` and ``brainldm rate results``: argparse wiring, no logic.

:func:`add_rate_subcommands` registers the ``rate`` command on the subparsers of
the ``brainldm`` parser; :func:`main_rate` runs it on its own. ``rate results``
summarises the ratings (:func:`brainldm.rating.summarize_ratings`) and then, when
the reconstruction folder belongs to a pipeline run, rewrites that run's report
(:func:`brainldm.pipeline.refresh_report`). Here is the only place where the two
meet: :mod:`brainldm.rating` knows nothing of the pipeline.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _max_samples(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}")
    return value


def find_run_folder(
    reconstructions: str | os.PathLike, run_dir: str | os.PathLike | None = None
) -> Path | None:
    """Return the pipeline run folder that a reconstruction folder belongs to.

    Parameters
    ----------
    reconstructions : path-like
        A reconstruction folder, e.g. ``RUN/reconstruct/subj01``.
    run_dir : path-like or None
        The run folder, if known. None looks for the nearest folder above
        ``reconstructions`` that holds ``config.toml``
        (:meth:`brainldm.pipeline.RunLayout.containing`).

    Returns
    -------
    run_dir : Path or None
        The run folder; None when ``run_dir`` is None and no folder above
        ``reconstructions`` is a run folder (reconstructions written outside a
        pipeline run, e.g. by ``brainldm reconstruct``).

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` is given but holds no ``config.toml``.
    """
    from brainldm.pipeline import RunLayout

    if run_dir is not None:
        run = RunLayout(run_dir)
        if not run.config_toml().is_file():
            raise FileNotFoundError(
                f"--pipeline-run {str(run_dir)!r} is not a pipeline run folder: it has no "
                f"{run.config_toml().name} (the folder given to brainldm run --out)."
            )
        return run.root
    try:
        return RunLayout.containing(reconstructions).root
    except FileNotFoundError:
        return None


def _cmd_serve(args: argparse.Namespace) -> int:
    from brainldm.rating import serve

    serve(
        args.run,
        args.db,
        host=args.host,
        port=args.port,
        raters=args.raters,
        announce=lambda text: print(text, flush=True),
        seed=args.seed,
        max_samples=args.samples,
        conditions=args.conditions,
        break_every=args.break_every,
        allow_signup=not args.no_signup,
    )
    return 0


def _cmd_results(args: argparse.Namespace) -> int:
    from brainldm.rating import summarize_ratings

    # Find the run folder first: a wrong --pipeline-run fails before anything is written.
    run_dir = find_run_folder(args.run, args.pipeline_run)
    results, paths = summarize_ratings(args.run, args.db, args.out, alpha=args.alpha)
    print(results.summary())
    print(f"-> {paths['json'].parent}")
    # The report reads RUN/reconstruct/subjNN/rating/: only results written there count.
    if run_dir is not None and args.out is None:
        from brainldm.pipeline import refresh_report

        report = refresh_report(run_dir)
        if report is not None:
            print(f"report updated: {report}")
    return 0


def add_rate_subcommands(subparsers) -> argparse.ArgumentParser:
    """Register ``rate`` (with ``serve`` and ``results``) on an argparse subparsers object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``parser.add_subparsers()`` returned.

    Returns
    -------
    parser : argparse.ArgumentParser
        The ``rate`` parser. Each leaf sets ``func`` (called with the namespace,
        returns the exit code) and ``rate_command``.
    """
    rate = subparsers.add_parser(
        "rate", help="human evaluation: two-alternative identification in the browser"
    )
    sub = rate.add_subparsers(dest="rate_command", required=True)

    serve = sub.add_parser("serve", help="serve the rating page on localhost")
    serve.add_argument("--run", required=True, help="reconstruction folder (index.csv, originals/)")
    serve.add_argument(
        "--db", default=None, help="ratings database (default RUN/rating/ratings.sqlite)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    serve.add_argument("--raters", type=_names, default=[], help="names to register, e.g. r1,r2")
    serve.add_argument("--no-signup", action="store_true",
                       help="only raters registered with --raters can log in")  # fmt: skip
    serve.add_argument("--seed", type=int, default=0, help="seed of the trial plans")
    serve.add_argument("--samples", type=_max_samples, default=1,
                       help="rate samples 0..N-1 per image and condition, or 'all'")  # fmt: skip
    serve.add_argument("--conditions", type=_names, default=None, help="e.g. z,c,zc (default all)")
    serve.add_argument("--break-every", type=int, default=50, help="answers between breaks")
    serve.set_defaults(func=_cmd_serve)

    results = sub.add_parser("results", help="accuracy per condition and signed-rank tests")
    results.add_argument("--run", required=True, help="reconstruction folder")
    results.add_argument(
        "--db", default=None, help="ratings database (default RUN/rating/ratings.sqlite)"
    )
    results.add_argument("--out", default=None, help="output folder (default RUN/rating)")
    results.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate")
    results.add_argument(
        "--pipeline-run", default=None, metavar="DIR",
        help="pipeline run folder whose report to update (default: the nearest folder "
        "above --run holding config.toml, if any)",
    )  # fmt: skip
    results.set_defaults(func=_cmd_results)
    return rate


def main_rate(argv: Sequence[str] | None = None) -> int:
    """Run ``brainldm rate ARGV`` without the rest of the CLI.

    Parameters
    ----------
    argv : sequence of str or None
        The arguments after ``rate``, e.g. ``["results", "--run", "DIR"]``; None
        reads ``sys.argv[1:]``.

    Returns
    -------
    code : int
        The exit code: 0, or 1 after a one-line error on stderr.
    """
    parser = argparse.ArgumentParser(prog="brainldm")
    add_rate_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["rate", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except (ValueError, TypeError, KeyError, OSError, ImportError) as err:
        print(f"brainldm rate {args.rate_command}: error: {err}", file=sys.stderr)
        return 1
