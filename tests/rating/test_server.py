"""The real server over HTTP: concurrent raters, and a SIGKILL in the middle of rating."""

import http.client
import json
import sqlite3
import subprocess
import threading

import pytest
from rating_helpers import RATE_COMMAND, server_thread

pytest.importorskip("flask", reason="the rating app needs Flask (pip install -e '.[rate]')")


class Client:
    """A minimal JSON client on one keep-alive connection."""

    def __init__(self, port, token=None):
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None):
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if self.token:
            headers["X-Rater-Token"] = self.token
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    def login(self, name, code=None):
        status, data = self.call("POST", "/api/login", {"name": name, "code": code})
        assert status in (200, 201), data
        self.token = data["token"]
        return self.token

    def answer(self, trial, choice="left", rt=400.0):
        return self.call(
            "POST", "/api/answer", {"trial": trial, "choice": choice, "response_time_ms": rt}
        )

    def close(self):
        self.conn.close()


def _judgements(db_path):
    with sqlite3.connect(db_path) as con:
        return con.execute(
            "SELECT rater, nsd_id, condition, sample, choice FROM judgements ORDER BY trial_id"
        ).fetchall()


def test_concurrent_raters_lose_and_duplicate_nothing(run_dir, localhost):
    n_raters, n_rounds = 6, 10
    with server_thread(run_dir) as server:
        tokens = {f"r{i}": Client(server.port).login(f"r{i}") for i in range(n_raters)}
        saved, refused, errors = [], [], []
        barrier = threading.Barrier(2 * n_raters)

        def rate(name):
            # Two clients (say, two tabs) per rater, answering the same open trials at once.
            client = Client(server.port, tokens[name])
            try:
                barrier.wait(timeout=10)
                for _ in range(n_rounds):
                    status, state = client.call("POST", "/api/next")
                    assert status == 200 and not state["done"], state
                    status, data = client.answer(state["trial"])
                    (saved if status == 200 else refused).append((name, state["trial"]))
                    assert status in (200, 409), data
            except Exception as err:  # pragma: no cover - reported below
                errors.append(err)
            finally:
                client.close()

        threads = [threading.Thread(target=rate, args=(n,)) for n in tokens for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        db = server.app.config["BRAINLDM_STORE"].path
    assert errors == []
    assert len(saved) + len(refused) == 2 * n_raters * n_rounds
    assert len(set(saved)) == len(saved)  # each trial accepted once
    assert set(refused) <= set(saved)  # a refused answer is a trial answered by the other tab
    rows = _judgements(db)
    assert len(rows) == len(saved)
    keys = [row[:4] for row in rows]
    assert len(set(keys)) == len(keys)
    for name in tokens:
        assert sum(row[0] == name for row in rows) == sum(s[0] == name for s in saved) >= n_rounds


def test_answers_survive_sigkill_and_rating_resumes(run_dir, server_process, localhost):
    db = run_dir / "rating" / "ratings.sqlite"
    server = server_process(run_dir, extra=["--seed", "7"])
    client = Client(server.port)
    code = client.login("alice")
    served = []
    for i in range(5):
        status, state = client.call("POST", "/api/next")
        served.append(state["trial"])
        assert client.answer(state["trial"], ("left", "right")[i % 2])[0] == 200
    status, open_trial = client.call("POST", "/api/next")
    client.close()
    server.kill()  # SIGKILL right after the last answer was acknowledged

    rows = _judgements(db)
    assert [r[4] for r in rows] == ["left", "right", "left", "right", "left"]

    # A restart with the same settings (on the same port) resumes.
    again = server_process(run_dir, port=server.port, extra=["--seed", "7"])
    client = Client(again.port)
    client.login("alice", code=code)
    status, me = client.call("GET", "/api/me")
    assert me["n_done"] == 5
    status, state = client.call("POST", "/api/next")
    assert state["trial"] == open_trial["trial"]  # the open trial comes back, unchanged
    while not state["done"]:
        assert state["trial"] not in served
        served.append(state["trial"])
        assert client.answer(state["trial"])[0] == 200
        status, state = client.call("POST", "/api/next")
    assert client.answer(served[0])[0] == 409  # replay of an answer from before the kill
    client.close()
    rows = _judgements(db)
    assert len(rows) == state["n_total"] == len(set(served)) == 24
    assert len({row[:4] for row in rows}) == 24


def test_restart_with_other_settings_is_refused(run_dir):
    from brainldm.rating import create_app

    create_app(run_dir, seed=7)
    out = subprocess.run(
        [*RATE_COMMAND, "serve", "--run", str(run_dir), "--port", "0", "--seed", "8"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("brainldm rate serve: error:")
    assert "seed: stored 7, given 8" in out.stderr
