"""Stage keys and resume decisions: what each stage reads, markers on disk, --stages, --force.

The plan tests write the markers a finished run leaves (as ``run_pipeline``
writes them) and ask :func:`plan_run` what a second run would do; the last test
runs the real prepare and features stages on a synthetic NSD with a tiny LDM.
"""

import json

import numpy as np
import pytest

from brainldm.config import make_run_config
from brainldm.pipeline import STAGES, RunLayout, StaleStageError, plan_run, removals, run_pipeline


def _config(**sections):
    overrides = {"data": {"subjects": (1,)}, "features": {"model": "/weights/sd-v1-4.ckpt"}}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return make_run_config("takagi2023", overrides)


def _finish(run_dir, config, stages=STAGES):
    """Write the markers of a run that finished ``stages`` with ``config``."""
    run = RunLayout(run_dir)
    for step in plan_run(config, run_dir, stages):
        run.stage_dir(step.stage.name).mkdir(parents=True, exist_ok=True)
        run.marker(step.stage.name).write_text(json.dumps(
            {"hash": step.key, "settings": step.settings, "upstream": step.upstream,
             "outputs": {}}))  # fmt: skip


def _actions(plan):
    return {step.stage.name: step.action for step in plan}


def test_a_finished_run_is_skipped_whatever_stages_are_requested(tmp_path):
    config = _config()
    _finish(tmp_path, config)
    assert set(_actions(plan_run(config, tmp_path)).values()) == {"skip"}
    # the defect: with only reconstruct requested, its key used to be computed from an
    # empty upstream chain, found "stale", and the finished stage deleted
    assert _actions(plan_run(config, tmp_path, ["reconstruct"])) == {"reconstruct": "skip"}
    assert _actions(plan_run(config, tmp_path, ["evaluate", "report"])) == {
        "evaluate": "skip", "report": "skip"}  # fmt: skip


def test_a_stage_key_covers_exactly_what_it_reads(tmp_path):
    config = _config()
    _finish(tmp_path, config)
    # where work runs and where inputs lie are read by no stage
    for other in (_config(scale={"executor": "ray", "shard_size": 3}),
                  _config(features={"device": "cuda"}),
                  _config(data={"nsd_root": "/elsewhere/nsd"})):  # fmt: skip
        assert set(_actions(plan_run(other, tmp_path)).values()) == {"skip"}
    # the report section: only the report is redrawn, nothing upstream recomputed
    plan = plan_run(_config(report={"n_gallery_images": 2}), tmp_path)
    assert _actions(plan) == {**{s: "skip" for s in STAGES[:-1]}, "report": "redo"}
    # the maps section: maps, figures and report are redrawn (drawings, not costly work)
    plan = plan_run(_config(maps={"surfaces": ("flat",)}), tmp_path)
    assert [s for s, a in _actions(plan).items() if a != "skip"] == ["maps", "figures", "report"]
    # the figures section: only the figures and the report
    plan = plan_run(_config(figures={"n_images": 2}), tmp_path)
    assert [s for s, a in _actions(plan).items() if a != "skip"] == ["figures", "report"]


def test_a_changed_setting_never_removes_finished_work_without_force(tmp_path):
    config = _config()
    _finish(tmp_path, config)
    changed = _config(decoding={"alphas": (1.0, 10.0)})
    with pytest.raises(StaleStageError) as info:
        plan_run(changed, tmp_path)
    message = str(info.value)
    assert "decode" in message and "decoding" in message and "--force decode" in message
    assert "nothing was run" in message and "reconstruct" in message  # redone with it
    # --force decode: decode and every finished stage after it that reads it is redone
    plan = plan_run(changed, tmp_path, force=["decode"])
    redone = [s for s, a in _actions(plan).items() if a == "redo"]
    assert redone == ["decode", "reconstruct", "evaluate", "figures", "report"]
    assert [line.split("/ (")[0] for line in removals(plan, tmp_path)] == [
        str(tmp_path / s) for s in redone]  # fmt: skip
    # encode does not read decode: untouched
    assert _actions(plan)["encode"] == "skip"


def test_the_sampled_z_makes_the_seed_a_setting_of_features(tmp_path):
    sample = _config(features={"z_posterior": "sample"})
    _finish(tmp_path, sample)
    with pytest.raises(StaleStageError, match=r"reconstruction.seed: 42 → 7") as info:
        plan_run(_config(features={"z_posterior": "sample"}, reconstruction={"seed": 7}),
                 tmp_path)  # fmt: skip
    assert str(info.value).startswith("stage(s) features ")
    assert "also redone: decode, reconstruct, evaluate, encode, maps, figures, report" in str(info.value)
    # with the posterior mean, z does not depend on the seed: only reconstruct reads it
    mean_dir = tmp_path / "mean"
    _finish(mean_dir, _config(features={"z_posterior": "mean"}))
    with pytest.raises(StaleStageError) as info:
        plan_run(_config(features={"z_posterior": "mean"}, reconstruction={"seed": 7}), mean_dir)
    assert str(info.value).startswith("stage(s) reconstruct ")


def test_upstream_keys_come_from_the_markers_on_disk(tmp_path):
    config = _config()
    _finish(tmp_path, config)
    run = RunLayout(tmp_path)
    decode = json.loads(run.marker("decode").read_text())
    decode["hash"] = "0123456789abcdef"  # decode was redone (e.g. by an earlier --force)
    run.marker("decode").write_text(json.dumps(decode))
    with pytest.raises(StaleStageError, match="reconstruct: the stages it reads from changed"):
        plan_run(config, tmp_path, ["reconstruct"])
    with pytest.raises(
        ValueError, match="reads the outputs of 'features', 'decode', which have not finished"
    ):
        plan_run(config, tmp_path / "empty", ["reconstruct"])


def test_a_seed_change_recomputes_the_sampled_features_only_with_force(tmp_path, fake_nsd,
                                                                      tiny_ldm):  # fmt: skip
    """The real prepare and features stages, z sampled from the VAE posterior."""
    from brainldm.nsd import NSDLayout

    weights = tmp_path / "weights"  # the key reads what the model's files hold
    weights.mkdir()
    (weights / "unet.safetensors").write_bytes(b"tiny")

    def config(seed):
        return make_run_config("demo", {
            "data": {"subjects": (1,), "nsd_root": str(fake_nsd.root)},
            "features": {"z_posterior": "sample", "model": str(weights)},
            "reconstruction": {"seed": seed}})  # fmt: skip

    run, layout = tmp_path / "run", NSDLayout(fake_nsd.root)
    kwargs = dict(layout=layout, ldm=tiny_ldm, stages=["prepare", "features"])
    run_pipeline(config(42), run, **kwargs)
    z = RunLayout(run).features_dir() / "z"

    def entries():
        from brainldm.features import FeatureStore

        store = FeatureStore(z.parent, z.name)
        return dict(zip(store.ids().tolist(), store.get(store.ids()), strict=True))

    before = entries()
    prepared = sorted(p.stat().st_mtime_ns for p in (run / "prepare").iterdir())
    with pytest.raises(StaleStageError, match="features: reconstruction.seed: 42 → 43"):
        run_pipeline(config(43), run, **kwargs)
    assert entries().keys() == before.keys()
    run_pipeline(config(43), run, force=["features"], **kwargs)
    after = entries()
    assert after.keys() == before.keys() and len(after) > 10
    assert all(not np.array_equal(before[k], after[k]) for k in before)  # new posterior draws
    marker = json.loads(RunLayout(run).marker("features").read_text())
    assert marker["settings"]["reconstruction.seed"] == 43
    assert sorted(p.stat().st_mtime_ns for p in (run / "prepare").iterdir()) == prepared


def test_force_redoes_the_finished_stages_after_it_even_with_the_same_settings(tmp_path):
    """--force after replacing the weights in place, or on corrupt outputs."""
    config = _config()
    _finish(tmp_path, config)
    plan = plan_run(config, tmp_path, force=["features"])
    assert _actions(plan) == {"prepare": "skip", **{s: "redo" for s in STAGES[1:]}}
    plan = plan_run(config, tmp_path, stages=["maps"], force=["maps"])
    assert _actions(plan) == {"maps": "redo", "report": "redo"}  # the report shows the maps


def test_weights_enter_the_key_by_what_they_hold_not_where_they_lie(tmp_path):
    weights = tmp_path / "a" / "sd.ckpt"
    weights.parent.mkdir()
    weights.write_bytes(b"weights" * 1000)
    _finish(tmp_path / "run", _config(features={"model": str(weights)}))
    moved = tmp_path / "b" / "sd.ckpt"
    moved.parent.mkdir()
    weights.rename(moved)
    plan = plan_run(_config(features={"model": str(moved)}), tmp_path / "run")
    assert set(_actions(plan).values()) == {"skip"}
    moved.write_bytes(b"other weights" * 1000)  # replaced at the same path
    expected = r"(?s)^stage\(s\) features .*features.model \(what its files hold\)"
    with pytest.raises(StaleStageError, match=expected):
        plan_run(_config(features={"model": str(moved)}), tmp_path / "run")


def test_evaluate_reads_the_protocols_only_with_downloaded_weights(tmp_path):
    config = _config()
    _finish(tmp_path, config)
    plan = plan_run(_config(evaluation={"protocols": ("takagi",)}), tmp_path)
    assert set(_actions(plan).values()) == {"skip"}  # the offline suite is scored anyway
    assert "evaluation.protocols" not in {n for p in plan for n in p.settings}


def test_unrequested_stages_with_other_settings_are_kept_and_said(tmp_path):
    config = _config()
    _finish(tmp_path, config)
    plan = plan_run(_config(decoding={"alphas": (1.0, 10.0)}), tmp_path, ["report"])
    assert _actions(plan) == {"decode": "keep", "report": "skip"}
    keep = next(p for p in plan if p.action == "keep")
    assert "decoding.alphas: [1e-06" in keep.reason and "→ [1.0, 10.0]" in keep.reason
    assert removals(plan, tmp_path) == []


def test_unfinished_work_with_other_settings_is_restarted_and_said(tmp_path):
    config = _config()
    _finish(tmp_path, config, stages=STAGES[:2])
    run = RunLayout(tmp_path)
    run.stage_dir("decode").mkdir()
    run.started("decode").write_text(json.dumps({"hash": "0000000000000000"}))
    plan = plan_run(config, tmp_path, ["decode"])
    assert _actions(plan) == {"decode": "restart"}
    assert removals(plan, tmp_path) == [
        f"{run.stage_dir('decode')}/ (unfinished, with other settings)"
    ]
    run.started("decode").write_text(json.dumps({"hash": plan[0].key}))
    assert _actions(plan_run(config, tmp_path, ["decode"])) == {"decode": "run"}  # resumed
