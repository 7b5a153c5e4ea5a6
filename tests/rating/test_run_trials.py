import pandas as pd
import pytest
from rating_helpers import write_run

from brainldm.rating import load_run, plan_trials, rated_reconstructions
from brainldm.reconstruction import original_path


def test_load_run(run_dir):
    run = load_run(run_dir)
    assert run.conditions == ("zc", "z", "c")
    assert len(run.original_ids) == 8 and run.n_without_original == 0
    assert len(run.index) == 8 * (2 + 1 + 2)
    row = run.index.iloc[0]
    assert run.reconstruction_file(row["nsd_id"], row["condition"], row["sample"]).is_file()
    with pytest.raises(KeyError):
        run.original_file(123456)


def test_load_run_skips_images_without_original(run_dir):
    ids = load_run(run_dir).original_ids
    original_path(run_dir, ids[0]).unlink()
    run = load_run(run_dir)
    assert ids[0] not in set(run.index["nsd_id"])
    assert run.n_without_original == 5


@pytest.mark.parametrize("bad", ["../outside.png", "/etc/hostname", "zc/../../outside.png"])
def test_load_run_refuses_paths_that_leave_the_run(run_dir, bad):
    (run_dir.parent / "outside.png").write_bytes(b"x")
    index = pd.read_csv(run_dir / "index.csv")
    index.loc[0, "path"] = bad
    index.to_csv(run_dir / "index.csv", index=False)
    with pytest.raises(ValueError, match="leaves the run folder"):
        load_run(run_dir)


def test_load_run_refuses_symlinks_out_of_the_run(run_dir):
    secret = run_dir.parent / "secret.png"
    secret.write_bytes(b"secret")
    index = pd.read_csv(run_dir / "index.csv")
    link = run_dir / index.loc[0, "path"]
    link.unlink()
    link.symlink_to(secret)
    with pytest.raises(ValueError, match="leaves the run folder"):
        load_run(run_dir)


def test_load_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no index.csv"):
        load_run(tmp_path)
    write_run(tmp_path / "a", n_images=2)
    pd.read_csv(tmp_path / "a/index.csv").drop(columns="seed").to_csv(tmp_path / "a/index.csv")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['seed'\]"):
        load_run(tmp_path / "a")
    write_run(tmp_path / "b", n_images=2)
    for path in (tmp_path / "b/originals").iterdir():
        path.unlink()
        break
    with pytest.raises(ValueError, match="needs at least 2"):
        load_run(tmp_path / "b")


def test_plan_is_reproducible_and_personal(run_dir):
    run = load_run(run_dir)
    a = plan_trials(run, "alice", seed=3)
    pd.testing.assert_frame_equal(a, plan_trials(run, "alice", seed=3))
    assert not a.equals(plan_trials(run, "bob", seed=3))
    assert not a.equals(plan_trials(run, "alice", seed=4))


def test_plan_covers_each_reconstruction_once(run_dir):
    run = load_run(run_dir)
    plan = plan_trials(run, "alice", max_samples=None)
    keys = list(zip(plan["nsd_id"], plan["condition"], plan["sample"], strict=True))
    assert len(keys) == len(set(keys)) == len(run.index)
    plan1 = plan_trials(run, "alice")  # default: the first sample only
    assert set(plan1["sample"]) == {0} and len(plan1) == 8 * 3


def test_plan_foils_and_sides(tmp_path):
    write_run(tmp_path, n_images=40, n_samples=1, size=4)
    run = load_run(tmp_path)
    plan = plan_trials(run, "alice", seed=1)
    assert (plan["foil"] != plan["nsd_id"]).all()
    assert set(plan["foil"]) <= set(run.original_ids)
    # One foil per image, shared by its conditions (the paired contrast).
    assert (plan.groupby("nsd_id")["foil"].nunique() == 1).all()
    assert set(plan["side"]) == {"left", "right"}
    assert 0.3 < (plan["side"] == "left").mean() < 0.7
    # Interleaved: not three blocks of one condition each.
    changes = (plan["condition"] != plan["condition"].shift()).sum()
    assert changes > 30


def test_rated_reconstructions_validates(run_dir):
    run = load_run(run_dir)
    assert set(rated_reconstructions(run, conditions=["z"])["condition"]) == {"z"}
    with pytest.raises(ValueError, match=r"unknown value\(s\) 'zz'; allowed: 'zc', 'z', 'c'"):
        rated_reconstructions(run, conditions=["zz"])
    with pytest.raises(ValueError, match="max_samples must be a positive integer"):
        rated_reconstructions(run, max_samples=0)
