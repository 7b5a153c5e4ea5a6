"""The paper's seed check: rerun reconstruction and encoding with other seeds, and compare.

"We show results from a single random seed, but we verified that different
random seed produced nearly identical results" (§3.5, Appendix C). Each other
seed gets a run folder ``seeds/seedN/`` whose prepare, features and decode
stages are links to the run's own (the same data, features and decoders), and
which reruns reconstruct, evaluate and encode with ``reconstruction.seed`` (the
noise of every generated image) and ``encoding.seed`` (the noise added to z for
zc, and the shuffle of the encoders' folds) set to N. Two tables compare them
with the run: the spread of the pooled identification scores across seeds, and
the agreement of each encoding model's accuracy map (Pearson r between the maps,
Dice of the significant voxels).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence

logger = logging.getLogger(__name__)

#: Stages linked from the run into each seed's run, and stages rerun there.
SHARED_STAGES = ("prepare", "features", "decode")
RERUN_STAGES = ("reconstruct", "evaluate", "encode")
#: The agreement tables, in ``RunLayout.seed_checks()``.
IDENTIFICATION_SPREAD, MAP_AGREEMENT = "identification_spread.csv", "map_agreement.csv"


def run_seed_checks(run_dir, seeds: Sequence[int], progress: bool = False) -> dict:
    """Rerun reconstruction and encoding of a finished run with other seeds; compare.

    Parameters
    ----------
    run_dir : path-like
        A run whose prepare, features and decode stages have finished, and at
        least one of reconstruct (with evaluate) and encode.
    seeds : sequence of int
        Other seeds (≥ 0, none the run's own ``reconstruction.seed``).
    progress : bool

    Returns
    -------
    outputs : dict
        ``{"seeds": [...], "tables": {name: path}}``. The report is rewritten
        with a section on the agreement.

    Raises
    ------
    ValueError, FileNotFoundError
        Before any work: not a finished run, or bad seeds.
    """
    import pandas as pd

    from brainldm._utils import atomic_path
    from brainldm.config import load_run_config
    from brainldm.pipeline._layout import RunLayout
    from brainldm.pipeline._report import refresh_report
    from brainldm.pipeline._run import run_pipeline

    run = RunLayout(run_dir)
    if not run.config_toml().is_file():
        raise FileNotFoundError(f"{run.config_toml()} is missing: {run.root} is not a brainldm "
                                "run folder.")  # fmt: skip
    config = load_run_config(run.config_toml())
    base = config.reconstruction.seed
    seeds = [int(s) for s in seeds]
    bad = [s for s in seeds if s < 0 or s == base]
    if not seeds or bad or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers ≥ 0 other than the run's own "
                         f"reconstruction.seed = {base}; got {seeds}.")  # fmt: skip
    missing = [s for s in SHARED_STAGES if not run.marker(s).exists()]
    if missing:
        raise ValueError(f"the seed check reuses the run's {', '.join(SHARED_STAGES)} stages; "
                         f"{', '.join(missing)} not finished in {run.root}.")  # fmt: skip
    stages = [s for s in RERUN_STAGES if run.marker(s).exists()]
    if not any(s in stages for s in ("evaluate", "encode")):
        raise ValueError(f"nothing to compare: neither evaluate nor encode has finished in "
                         f"{run.root}.")  # fmt: skip
    if "evaluate" in stages and "reconstruct" not in stages:
        stages.remove("evaluate")
    for seed in seeds:
        sub = RunLayout(run.seed_run(seed))
        sub.root.mkdir(parents=True, exist_ok=True)
        for stage in SHARED_STAGES:  # the same data, features and decoders
            link = sub.stage_dir(stage)
            if not link.exists():
                os.symlink(run.stage_dir(stage).resolve(), link, target_is_directory=True)
        other = dataclasses.replace(
            config,
            reconstruction=dataclasses.replace(config.reconstruction, seed=seed),
            encoding=dataclasses.replace(config.encoding, seed=seed),
        )
        logger.info("seed %d: running %s in %s", seed, ", ".join(stages), sub.root)
        run_pipeline(other, sub.root, stages=stages, demo=config.preset == "demo",
                     progress=progress)  # fmt: skip
    runs = {base: run, **{s: RunLayout(run.seed_run(s)) for s in seeds}}
    tables = {}
    if "evaluate" in stages:
        tables[IDENTIFICATION_SPREAD] = _identification_spread(runs)
    if "encode" in stages:
        tables[MAP_AGREEMENT] = _map_agreement(runs, base)
    paths = {}
    for name, table in tables.items():
        path = run.seed_checks() / name
        with atomic_path(path) as tmp:
            pd.DataFrame(table).to_csv(tmp, index=False)
        paths[name] = str(path)
    refresh_report(run.root)
    return {"seeds": [base, *seeds], "tables": paths}


def _outputs(run, stage: str) -> dict:
    return json.loads(run.marker(stage).read_text())["outputs"]


def _identification_spread(runs: dict):
    import pandas as pd

    from brainldm.evaluation import seed_spread

    frames = []
    for protocol in _outputs(next(iter(runs.values())), "evaluate"):
        summaries = {seed: pd.read_csv(r.evaluation(protocol) / "summary.csv")
                     for seed, r in runs.items()}  # fmt: skip
        frame = seed_spread(summaries)
        frame.insert(0, "protocol", protocol)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _map_agreement(runs: dict, base: int):
    from brainldm.encoding import EncodingAnalyses, map_agreement

    rows = []
    for subject in _outputs(runs[base], "encode"):
        loaded = {seed: EncodingAnalyses.load(r.encoding(int(subject))) for seed, r in runs.items()}
        for model, ref in loaded[base].results.items():
            if "+" in model:  # joint models: their unique variance is what the figures show
                continue
            for seed, analyses in loaded.items():
                if seed == base:
                    continue
                other = analyses.results[model]
                rows.append({"subject": int(subject), "model": model, "seed_a": base,
                             "seed_b": seed, **map_agreement(ref.r, ref.significant, other.r,
                                                             other.significant)})  # fmt: skip
    return rows
