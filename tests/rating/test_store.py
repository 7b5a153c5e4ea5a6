import sqlite3
import threading

import pytest

from brainldm.rating import (
    RaterExistsError,
    RatingStore,
    TrialAnsweredError,
    UnknownRaterError,
    UnknownTrialError,
    load_run,
    plan_trials,
)


def _plan(run_dir, rater):
    return list(plan_trials(load_run(run_dir), rater).itertuples(index=False, name=None))


def test_database_is_in_wal_mode(tmp_path):
    store = RatingStore(tmp_path / "sub" / "r.sqlite")
    with sqlite3.connect(store.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_raters_and_tokens(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    token = store.register_rater("alice")
    assert store.rater_for_token(token) == "alice"
    assert store.rater_for_token(token.upper()[:10] + "-" + token[10:]) == "alice"  # as typed
    with pytest.raises(RaterExistsError):
        store.register_rater("alice")
    with pytest.raises(ValueError, match="rater name '../x' is not valid"):
        store.register_rater("../x")
    for bad in (None, "", "0" * 20, token + "0", 12):
        with pytest.raises(UnknownRaterError):
            store.rater_for_token(bad)
    # Only the hash is stored.
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("r.sqlite*"))
    assert stored and token.encode() not in stored
    assert store.raters() == ["alice"]


def test_open_trial_comes_back_until_answered(tmp_path, run_dir):
    store = RatingStore(tmp_path / "r.sqlite")
    store.register_rater("alice")
    plan = _plan(run_dir, "alice")
    first = store.next_trial("alice", plan)
    assert first.ordinal == 0 and first.key == plan[0][:3]
    assert store.next_trial("alice", plan) == first  # e.g. after a reload
    assert store.open_trial(first.token) == first
    correct = store.record_answer("alice", first.token, first.side, 800.0)
    assert correct is True
    with pytest.raises(UnknownTrialError):
        store.open_trial(first.token)
    second = store.next_trial("alice", plan)
    assert second.key == plan[1][:3] and second.ordinal == 1
    assert (
        store.record_answer(
            "alice", second.token, "left" if second.side == "right" else "right", 1.0
        )
        is False
    )


def test_each_trial_served_once_then_done(tmp_path, run_dir):
    store = RatingStore(tmp_path / "r.sqlite")
    store.register_rater("alice")
    plan = _plan(run_dir, "alice")
    keys = []
    while (trial := store.next_trial("alice", plan)) is not None:
        keys.append(trial.key)
        store.record_answer("alice", trial.token, "left", 10.0)
        assert len(keys) <= len(plan)
    assert keys == [p[:3] for p in plan]
    frame = store.judgements("alice")
    assert len(frame) == len(plan) and not frame.duplicated(["nsd_id", "condition", "sample"]).any()


def test_answers_are_checked(tmp_path, run_dir):
    store = RatingStore(tmp_path / "r.sqlite")
    for name in ("alice", "bob"):
        store.register_rater(name)
    trial = store.next_trial("alice", _plan(run_dir, "alice"))
    with pytest.raises(UnknownTrialError):
        store.record_answer("bob", trial.token, "left", 1.0)  # another rater's trial
    with pytest.raises(UnknownTrialError):
        store.record_answer("alice", "x" * 22, "left", 1.0)
    with pytest.raises(ValueError, match="choice='up' is not valid"):
        store.record_answer("alice", trial.token, "up", 1.0)
    store.record_answer("alice", trial.token, "right", 1.0)
    with pytest.raises(TrialAnsweredError):
        store.record_answer("alice", trial.token, "left", 1.0)
    frame = store.judgements()
    assert frame[["rater", "choice"]].values.tolist() == [["alice", "right"]]


def test_settings_are_fixed_at_the_start(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    assert store.ensure_settings({"seed": 0, "max_samples": 1}) == {"seed": 0, "max_samples": 1}
    assert store.ensure_settings({"seed": 0, "max_samples": 1}) == {"seed": 0, "max_samples": 1}
    with pytest.raises(ValueError, match="seed: stored 0, given 1"):
        store.ensure_settings({"seed": 1, "max_samples": 1})


def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path, run_dir):
    store = RatingStore(tmp_path / "r.sqlite")
    raters = [f"r{i}" for i in range(6)]
    plans = {}
    for name in raters:
        store.register_rater(name)
        plans[name] = _plan(run_dir, name)
    saved, conflicts, errors = [], [], []
    barrier = threading.Barrier(len(raters) * 2)

    def work(name):
        # Two threads per rater: they race for the same open trial.
        try:
            barrier.wait(timeout=10)
            for _ in range(10):
                trial = store.next_trial(name, plans[name])
                try:
                    store.record_answer(name, trial.token, "left", 5.0)
                    saved.append((name, trial.key))
                except TrialAnsweredError:
                    conflicts.append((name, trial.key))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in raters for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(saved) + len(conflicts) == 2 * 10 * len(raters)
    frame = store.judgements()
    rows = [(r.rater, (r.nsd_id, r.condition, r.sample)) for r in frame.itertuples()]
    assert sorted(rows) == sorted(saved)  # nothing lost, nothing duplicated
    assert set(conflicts) <= set(saved)  # a lost race is a trial someone answered
