"""The whole analysis as resumable stages, from prepare to report.

The stages: prepare → features → decode → reconstruct → evaluate → encode →
maps → figures → report.

Each stage writes into ``out_dir/<stage>/`` and, when it has finished, a
``.done.json`` marker holding its key, the settings it read and its outputs
(:mod:`brainldm.pipeline._resume` decides what runs). An interrupted stage
resumes: its outputs are written atomically, and the feature stores and the
reconstruction skip what already exists.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainldm.config import RunConfig, run_config_to_toml
from brainldm.pipeline._context import RunContext
from brainldm.pipeline._layout import RunLayout
from brainldm.pipeline._resume import plan_run, removals
from brainldm.pipeline._stages import STAGE_NAMES, split_rois
from brainldm.pipeline._stages import STAGES as ALL_STAGES

logger = logging.getLogger(__name__)

#: Stage names in run order.
STAGES = STAGE_NAMES


def run_pipeline(
    config: RunConfig,
    out_dir: str | os.PathLike,
    layout=None,
    ldm=None,
    stages: Sequence[str] = STAGES,
    force: Sequence[str] = (),
    demo: bool = False,
    progress: bool = False,
) -> dict:
    """Run (or resume) the stages of the analysis.

    Parameters
    ----------
    config : RunConfig
    out_dir : path-like
        Gets one folder per stage and ``config.toml`` (the resolved config); see
        :class:`RunLayout`.
    layout : NSDLayout, optional
        Default: from ``config.data.nsd_root`` / ``$BRAINLDM_NSD_ROOT``.
    ldm : LatentDiffusion, optional
        Default: loaded from ``config.features.model`` when first needed.
    stages : sequence of str
        Stages to run, in pipeline order. A finished stage whose settings hold
        is skipped; an unfinished one resumes.
    force : sequence of str
        Finished stages to remove and redo (with the finished stages after
        them). Without it, a stage that finished with other settings is kept
        and the run stops with an error naming the changed settings.
    demo : bool
        Marks a demo run (synthetic data, tiny LDM) in the report.
    progress : bool

    Returns
    -------
    summary : dict of str to dict
        What each stage of the plan recorded in its marker.

    Raises
    ------
    StaleStageError
        Before any work, for finished stages whose settings changed.
    ValueError, FileNotFoundError
        Before any work, for settings or input files at fault.
    """
    from brainldm._utils import check_choices, remove_temporaries, write_json_atomic
    from brainldm.nsd import NSDLayout

    check_choices("stages", stages, STAGES)
    check_choices("force", force, STAGES)
    if not list(stages):
        raise ValueError(f"stages is empty; allowed: any of {list(STAGES)}.")
    run = RunLayout(out_dir)
    if layout is None:
        layout = NSDLayout.from_root(config.data.nsd_root,
                                     annotations_dir=config.data.annotations_dir)  # fmt: skip
    ctx = RunContext(config=config, run=run, nsd=layout, ldm=ldm, demo=demo, progress=progress)
    plan = plan_run(config, run.root, stages, force, demo=demo)
    # Every input the stages to run will read is checked before anything is written.
    check_inputs(ctx, [step.stage.name for step in plan if step.action not in ("skip", "keep")])
    for step in plan:
        if step.action == "keep":
            logger.warning("stage %s: %s", step.stage.name, step.reason)
    # Said, then removed before any stage runs: a run killed later finds no marker of a
    # stage it was going to redo, so it can never skip it.
    for line in removals(plan, run.root):
        logger.warning("removing %s", line)
    for step in plan:
        if step.action in ("redo", "restart"):
            shutil.rmtree(run.stage_dir(step.stage.name), ignore_errors=True)
    run.root.mkdir(parents=True, exist_ok=True)
    _write_text(run.config_toml(), run_config_to_toml(config))
    summary = {}
    for step in plan:
        name = step.stage.name
        if step.action == "keep":
            continue
        if step.action == "skip":
            logger.info("stage %s: finished already, skipped", name)
            summary[name] = _read_outputs(run, name)
            continue
        run.stage_dir(name).mkdir(parents=True, exist_ok=True)
        write_json_atomic(run.started(name), {"hash": step.key})  # same key later: resume
        if remove_temporaries([run.stage_dir(name)], recursive=True):
            logger.info("stage %s: removed temporary files of an interrupted run", name)
        logger.info("stage %s: running (%s)", name, step.reason)
        outputs = step.stage.run(ctx)
        write_json_atomic(
            run.marker(name),
            {
                "hash": step.key,
                "settings": step.settings,
                "upstream": step.upstream,
                "outputs": outputs,
            },
        )
        summary[name] = outputs
    return summary


def _read_json(path: Path) -> dict | None:
    import json

    return json.loads(path.read_text()) if path.exists() else None


def _read_outputs(run: RunLayout, stage: str) -> dict:
    return _read_json(run.marker(stage))["outputs"]


def _write_text(path: Path, text: str) -> None:
    from brainldm._utils import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text)


def check_inputs(ctx: RunContext, stages: Sequence[str]) -> None:
    """Check the settings and files that ``stages`` will read, before any of them runs.

    NSD files are checked from their headers (betas) or read (design, ROIs,
    captions); the model and weights folders must exist.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the setting or the file at fault.
    """
    from brainldm.nsd import check_split_inputs, check_stimulus_inputs, load_trials

    c = ctx.config
    d = c.data
    if "prepare" in stages:
        for subject in d.subjects:
            for atlas, rois in split_rois(d).values():
                check_split_inputs(ctx.nsd, subject, rois, atlas, d.split, fmt=d.fmt)
    if "features" in stages:
        ids = [load_trials(ctx.nsd, subject, fmt=d.fmt).nsd_ids for subject in d.subjects]
        check_stimulus_inputs(ctx.nsd, np.unique(np.concatenate(ids)))
    needs_ldm = {stage.name for stage in ALL_STAGES if stage.needs_ldm} & set(stages)
    if needs_ldm and ctx.ldm is None:
        if c.features.model is None:
            raise ValueError(
                f"features.model is not set, and the stage(s) {sorted(needs_ldm)} need the LDM: "
                "give a local Stable Diffusion v1.x folder or checkpoint (e.g. sd-v1-4.ckpt) "
                "in the config's [features] section."
            )
        if not Path(c.features.model).exists():
            raise FileNotFoundError(f"features.model={c.features.model!r} does not exist.")
    if "evaluate" in stages and c.evaluation.weights_dir is not None:
        if not Path(c.evaluation.weights_dir).is_dir():
            raise FileNotFoundError(
                f"evaluation.weights_dir={c.evaluation.weights_dir!r} is not a folder."
            )
    if c.scale.executor == "ray" and needs_ldm and c.features.model is None:
        raise ValueError("scale.executor='ray' needs features.model: workers load it from disk.")
