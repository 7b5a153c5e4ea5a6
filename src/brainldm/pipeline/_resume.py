"""Which stages run, resume, are skipped or redone; the markers that record finished work.

A stage's key is a hash of the settings it reads (as it declares them), of the
keys of the stages it reads from, and of the demo flag. The key of an upstream
stage is the one it will have after this run when it runs now, else the one in
its marker on disk: never a function of which stages were requested. So
``--stages reconstruct`` after a full run finds reconstruct's key unchanged and
skips it.

Finished work is never removed implicitly. A costly stage that finished with
other settings is an error naming the changed settings, until the user passes
``force`` for it; the stages after a forced one that had finished are then
redone too (their inputs are gone). Stages that only draw (maps, report) are
redrawn when their key changes. An unfinished stage resumes when its key
holds, else its partial outputs are cleared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from brainldm.pipeline._layout import RunLayout
from brainldm.pipeline._stages import STAGE_NAMES, STAGES, Stage


class StaleStageError(ValueError):
    """A finished stage's settings changed; its outputs are kept until ``force``."""


#: Settings that name a file or folder enter a key by what they hold (names, sizes,
#: first and last MiB of each file), so moving the weights changes no key and
#: replacing them at the same path does.
PATH_SETTINGS = ("features.model", "evaluation.weights_dir")


def _value(config, name: str):
    section, _, key = name.partition(".")
    value = getattr(getattr(config, section), key)
    if name in PATH_SETTINGS and value is not None:
        from brainldm._utils import path_fingerprint

        value = path_fingerprint(value) or f"missing: {value}"
    return json.loads(json.dumps(value, default=str))  # tuples → lists, as in the marker


def _names(config, read: str) -> list[str]:
    """``"section"`` → each of its settings but the device (where work runs, not what)."""
    if "." in read:
        return [read]
    section = getattr(config, read)
    return [f"{read}.{f.name}" for f in dataclasses.fields(section) if f.name != "device"]


def stage_settings(stage: Stage, config) -> dict:
    """The settings ``stage`` reads, by full name (JSON values)."""
    settings = {name: _value(config, name) for read in stage.reads for name in _names(config, read)}
    for name, (other, value) in stage.reads_when.items():
        if _value(config, other) == value:
            settings[name] = _value(config, name)
    for name, (other, value) in stage.reads_unless.items():
        if _value(config, other) != value:
            settings[name] = _value(config, name)
    return settings


def stage_key(stage: Stage, settings: dict, upstream: dict, demo: bool) -> str:
    """The hash of what a stage's outputs depend on."""
    text = json.dumps([stage.name, settings, upstream, bool(demo)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_marker(run: RunLayout, stage: str) -> dict | None:
    """The finished-stage marker of ``stage`` (None when the stage has not finished)."""
    path = run.marker(stage)
    return json.loads(path.read_text()) if path.exists() else None


@dataclass(frozen=True)
class StepPlan:
    """What a run does with one stage.

    Attributes
    ----------
    stage : Stage
    key : str
    settings : dict
        The settings it reads, for its marker.
    upstream : dict of str to str
        Keys of the stages it reads from.
    action : {"skip", "run", "restart", "redo", "keep"}
        ``"skip"``: finished with this key. ``"run"``: start or resume.
        ``"restart"``: unfinished with other settings: remove its partial outputs,
        then run. ``"redo"``: remove its finished outputs (forced, or after a stage
        it reads from), then run. ``"keep"``: not requested, finished with other
        settings than the config's: kept as it is (said in the log).
    reason : str
        Why, for the log and the command line.
    """

    stage: Stage
    key: str
    settings: dict
    upstream: dict
    action: str
    reason: str


def _changes(old: dict, new: dict) -> list[str]:
    names = sorted(set(old) | set(new))
    return [f"{n}{' (what its files hold)' if n in PATH_SETTINGS else ''}: "
            f"{old.get(n, '(not read)')!r} → {new.get(n, '(not read)')!r}"
            for n in names if old.get(n) != new.get(n)]  # fmt: skip


def plan_run(
    config, out_dir, stages: Sequence[str] = STAGE_NAMES, force: Sequence[str] = (),
    demo: bool = False,
) -> list[StepPlan]:  # fmt: skip
    """Decide, before any work, what a run does with each stage.

    Parameters
    ----------
    config : RunConfig
    out_dir : path-like
    stages : sequence of str
        Stages requested.
    force : sequence of str
        Stages to remove and redo (they are run even if not in ``stages``).
    demo : bool

    Returns
    -------
    plan : list of StepPlan
        The stages to run or skip, and the unrequested ones kept with other
        settings, in run order.

    Raises
    ------
    StaleStageError
        If a requested costly stage finished with other settings and is not forced:
        the message names each such stage and its changed settings, and says what
        ``--force`` would remove.
    ValueError
        If a stage needs the outputs of a stage that has not finished and is not run.
    """
    run = RunLayout(out_dir)
    wanted, force = set(stages) | set(force), set(force)
    keys: dict[str, str | None] = {}
    redone: set[str] = set()
    plan, stale = [], []
    for stage in STAGES:
        marker = read_marker(run, stage.name)
        # A finished stage whose inputs are redone now is redone too, requested or not.
        cascade = marker is not None and bool(redone & set(stage.after))
        if stage.name not in wanted and not cascade:
            keys[stage.name] = marker.get("hash") if marker else None
            if marker is not None and "settings" in marker:
                changed = _changes(marker["settings"], stage_settings(stage, config))
                if changed:  # not requested: kept as it is, and said
                    reason = "finished with other settings, kept: " + "; ".join(changed)
                    plan.append(StepPlan(stage, marker["hash"], marker["settings"],
                                         marker.get("upstream", {}), "keep", reason))  # fmt: skip
            continue
        upstream = {name: keys[name] for name in stage.after if keys.get(name) is not None}
        missing = [name for name in stage.after if name not in upstream]
        if missing and not stage.optional_after:
            raise ValueError(
                f"stage {stage.name!r} reads the outputs of {', '.join(map(repr, missing))}, "
                f"which {'has' if len(missing) == 1 else 'have'} not finished in "
                f"{str(run.root)!r}; add {','.join(missing)} to the stages to run."
            )
        settings = stage_settings(stage, config)
        key = stage_key(stage, settings, upstream, demo)
        keys[stage.name] = key
        started = _read(run.started(stage.name))
        if stage.name in force:
            action = "redo" if run.stage_dir(stage.name).exists() else "run"
            reason = "forced"
        elif cascade:
            action = "redo"
            reason = "the stages it reads from are redone: " + ", ".join(
                sorted(redone & set(stage.after)))
        elif marker is not None and marker.get("hash") == key:
            action, reason = "skip", "finished with these settings"
        elif marker is not None:
            changed = _changes(marker.get("settings", {}), settings) or [
                "the stages it reads from changed"]  # fmt: skip
            if stage.costly:
                stale.append((stage.name, changed))
            action, reason = "redo", "its settings changed: " + "; ".join(changed)
        elif started is not None and started.get("hash") != key:
            action, reason = "restart", "unfinished, with other settings"
        else:
            action, reason = "run", "resumed" if started is not None else "not finished"
        if action == "redo":
            redone.add(stage.name)
        plan.append(StepPlan(stage, key, settings, upstream, action, reason))
    if stale:
        lines = [f"  {name}: " + "; ".join(changed) for name, changed in stale]
        names = ",".join(name for name, _ in stale)
        later = [p.stage.name for p in plan if p.action == "redo" and p.stage.name not in names]
        raise StaleStageError(
            f"stage(s) {names} of {str(run.root)!r} finished with other settings; their "
            "outputs are kept, nothing was run:\n" + "\n".join(lines) + "\n"
            f"To remove and recompute them (and the finished stages after them), run again "
            f"with --force {names}"
            + (f" (also redone: {', '.join(later)})" if later else "")
            + "; or write to another output folder."
        )
    return plan


def _read(path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def removals(plan: Sequence[StepPlan], out_dir) -> list[str]:
    """The stage folders that ``plan`` removes (finished, or unfinished with other settings)."""
    run = RunLayout(out_dir)
    return [f"{run.stage_dir(p.stage.name)}/ ({p.reason})" for p in plan
            if p.action in ("redo", "restart")]  # fmt: skip
