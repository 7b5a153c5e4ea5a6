"""The web app through Flask's test client: login, trials, security."""

import http.client
import json

import pytest
from rating_helpers import server_thread

pytest.importorskip("flask", reason="the rating app needs Flask (pip install -e '.[rate]')")

from brainldm.rating import create_app, load_run  # noqa: E402


@pytest.fixture
def app(run_dir):
    return create_app(run_dir, break_every=5)


@pytest.fixture
def client(app):
    return app.test_client()


def login(client, name, code=None):
    body = {"name": name} if code is None else {"name": name, "code": code}
    response = client.post("/api/login", json=body)
    assert response.status_code in (200, 201), response.json
    return {"X-Rater-Token": response.json["token"]}


def next_trial(client, headers):
    response = client.post("/api/next", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def answer(client, headers, trial, choice="left", rt=650.0):
    body = {"trial": trial, "choice": choice, "response_time_ms": rt}
    return client.post("/api/answer", headers=headers, json=body)


def test_page_and_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and b'src="/static/app.js"' in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    js = client.get("/static/app.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript"
    assert client.get("/static/style.css").mimetype == "text/css"


def test_a_rater_goes_through_every_trial_once(app, client):
    headers = login(client, "alice")
    seen = []
    for _ in range(100):
        state = next_trial(client, headers)
        if state["done"]:
            break
        assert next_trial(client, headers)["trial"] == state["trial"]  # open trial comes back
        for which, url in state["images"].items():
            image = client.get(url)
            assert image.status_code == 200 and image.data[:8] == b"\x89PNG\r\n\x1a\n", which
        response = answer(client, headers, state["trial"])
        assert response.status_code == 200 and response.json["n_done"] == len(seen) + 1
        seen.append(state["trial"])
    assert state == {"done": True, "rater": "alice", "n_done": 24, "n_total": 24, "break_every": 5}
    frame = app.config["BRAINLDM_STORE"].judgements()
    assert len(frame) == 24 == len(set(seen))
    assert not frame.duplicated(["rater", "nsd_id", "condition", "sample"]).any()
    assert (frame["response_time_ms"] == 650.0).all()


def test_images_show_the_trial(app, client, run_dir):
    headers = login(client, "alice")
    state = next_trial(client, headers)
    trial = app.config["BRAINLDM_STORE"].open_trial(state["trial"])
    run = load_run(run_dir)
    expected = {
        "recon": run.reconstruction_file(trial.nsd_id, trial.condition, trial.sample),
        trial.side: run.original_file(trial.nsd_id),
        ("left" if trial.side == "right" else "right"): run.original_file(trial.foil),
    }
    for which, path in expected.items():
        assert client.get(state["images"][which]).data == path.read_bytes()
    # The URLs give away neither a file name nor the answer.
    assert all(str(trial.nsd_id) not in url for url in state["images"].values())


def test_the_two_candidates_responses_differ_only_in_their_bytes(run_dir, localhost):
    """Nothing outside the image bytes tells the true candidate from the foil.

    Werkzeug's default ETag hashes the file's path; with it, one constant per
    condition picked the true image in 98% of trials. Every trial of a rater is
    checked over the real server: the headers of ``left`` and ``right`` are the
    same apart from the length of the bytes, and carry no ETag or date of the file.
    """
    with server_thread(run_dir) as server:
        host = f"127.0.0.1:{server.port}"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)

        def call(method, path, headers=(), body=None):
            conn.request(method, path, body=body, headers={"Host": host, **dict(headers)})
            response = conn.getresponse()
            return response, response.read()

        _, body = call("POST", "/api/login", {"Content-Type": "application/json"},
                       json.dumps({"name": "alice"}))  # fmt: skip
        rater = {"X-Rater-Token": json.loads(body)["token"]}
        n_trials = 0
        while True:
            state = json.loads(call("POST", "/api/next", rater)[1])
            if state["done"]:
                break
            urls = state["images"]
            assert urls["left"].replace("left", "right") == urls["right"]
            headers = {}
            for which in ("recon", "left", "right"):
                response, data = call("GET", urls[which])
                assert response.status == 200 and data[:4] == b"\x89PNG"
                found = {k.lower(): v for k, v in response.getheaders()}
                assert int(found.pop("content-length")) == len(data)
                found.pop("date")  # the server's clock, the same for both
                headers[which] = found
            assert headers["left"] == headers["right"] == headers["recon"]
            assert not {"etag", "last-modified", "content-disposition"} & set(headers["left"])
            assert headers["left"]["cache-control"] == "no-store"
            answer_body = json.dumps({"trial": state["trial"], "choice": "left",
                                      "response_time_ms": 500})  # fmt: skip
            call("POST", "/api/answer", {**rater, "Content-Type": "application/json"}, answer_body)
            n_trials += 1
        conn.close()
    assert n_trials == 24


def test_a_file_turned_into_a_symlink_after_startup_is_not_followed(app, client, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nnot for raters")
    headers = login(client, "alice")
    state = next_trial(client, headers)
    trial = app.config["BRAINLDM_STORE"].open_trial(state["trial"])
    run = app.config["BRAINLDM_RUN"]
    files = {
        "recon": run.reconstruction_file(trial.nsd_id, trial.condition, trial.sample),
        trial.side: run.original_file(trial.nsd_id),
    }
    for which, path in files.items():
        assert client.get(state["images"][which]).status_code == 200
        path.unlink()
        path.symlink_to(secret)
        response = client.get(state["images"][which])
        assert response.status_code == 404 and b"not for raters" not in response.data, which


def test_login_rules(run_dir):
    client = create_app(run_dir).test_client()
    first = client.post("/api/login", json={"name": "alice"})
    assert first.status_code == 201 and first.json["new"] is True
    code = first.json["token"]
    taken = client.post("/api/login", json={"name": "alice"})
    assert taken.status_code == 409 and "resume code" in taken.json["error"]
    again = client.post("/api/login", json={"name": "alice", "code": code.upper()})
    assert again.status_code == 200 and again.json == {
        "rater": "alice",
        "token": code,
        "new": False,
    }
    assert client.post("/api/login", json={"name": "", "code": code}).json["rater"] == "alice"
    assert client.post("/api/login", json={"name": "alice", "code": "0" * 20}).status_code == 403
    bob = client.post("/api/login", json={"name": "bob"}).json["token"]
    assert client.post("/api/login", json={"name": "alice", "code": bob}).status_code == 403
    bad_names = ("../etc", "", "a" * 65, " alice", "alice\n", "bob\n", "al\nice", 7, None, ["x"])
    for bad in bad_names:
        assert client.post("/api/login", json={"name": bad}).status_code == 400, bad


def test_signup_can_be_closed(tmp_path, run_dir):
    from brainldm.rating import make_server

    server = make_server(run_dir, port=0, raters=["r1", "r2"], allow_signup=False)
    try:
        client = server.app.test_client()
        host = {"Host": f"127.0.0.1:{server.port}"}
        assert client.post("/api/login", json={"name": "mallory"}, headers=host).status_code == 403
        token = server.new_raters["r1"]
        assert server.rater_url(token).endswith(f"/#token={token}")
        headers = {"X-Rater-Token": token, **host}
        assert client.get("/api/me", headers=headers).json["rater"] == "r1"
        assert "r2: http://127.0.0.1:" in server.banner()
    finally:
        server.close()


@pytest.mark.parametrize("headers", [{}, {"X-Rater-Token": "nope"}, {"X-Rater-Token": "0" * 20}])
def test_api_needs_a_rater_token(client, headers):
    assert client.post("/api/next", headers=headers).status_code == 401
    assert client.get("/api/me", headers=headers).status_code == 401
    assert answer(client, headers, "x" * 22).status_code == 401


MALFORMED = [
    ("not json", dict(data="choice=left", content_type="application/x-www-form-urlencoded"), 400),
    ("text/plain", dict(data='{"trial": "T", "choice": "left", "response_time_ms": 1}',
                        content_type="text/plain"), 400),  # fmt: skip
    ("broken json", dict(data='{"trial": ', content_type="application/json"), 400),
    ("a list", dict(json=["T", "left", 1]), 400),
    ("missing key", dict(json={"trial": "T", "choice": "left"}), 400),
    ("extra key", dict(json={"trial": "T", "choice": "left", "response_time_ms": 1,
                             "rater": "bob"}), 400),
    ("bad choice", dict(json={"trial": "T", "choice": "up", "response_time_ms": 1}), 400),
    ("choice type", dict(json={"trial": "T", "choice": 0, "response_time_ms": 1}), 400),
    ("negative rt", dict(json={"trial": "T", "choice": "left", "response_time_ms": -1}), 400),
    ("huge rt", dict(json={"trial": "T", "choice": "left", "response_time_ms": 1e12}), 400),
    ("rt string", dict(json={"trial": "T", "choice": "left", "response_time_ms": "1"}), 400),
    ("rt bool", dict(json={"trial": "T", "choice": "left", "response_time_ms": True}), 400),
    ("rt NaN", dict(data='{"trial": "T", "choice": "left", "response_time_ms": NaN}',
                    content_type="application/json"), 400),  # fmt: skip
    ("400-digit rt", dict(data='{"trial": "T", "choice": "left", "response_time_ms": '
                          + "9" * 400 + "}", content_type="application/json"), 400),
    ("nested brackets", dict(data='{"trial": "T", "choice": "left", "response_time_ms": '
                             + "[" * 1500 + "]" * 1500 + "}",
                             content_type="application/json"), 400),
    ("trial type", dict(json={"trial": 5, "choice": "left", "response_time_ms": 1}), 404),
    ("unknown trial", dict(json={"trial": "A" * 22, "choice": "left", "response_time_ms": 1}), 404),
    ("odd token", dict(json={"trial": "../../x", "choice": "left", "response_time_ms": 1}), 404),
    ("too large", dict(json={"trial": "T", "choice": "left", "response_time_ms": 1,
                             "x": "y" * 9000}), 413),
]  # fmt: skip


@pytest.mark.parametrize("name, kwargs, status", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_submissions_are_rejected(app, client, name, kwargs, status):
    headers = login(client, "alice")
    token = next_trial(client, headers)["trial"]
    if "json" in kwargs and isinstance(kwargs["json"], dict) and kwargs["json"].get("trial") == "T":
        kwargs = {**kwargs, "json": {**kwargs["json"], "trial": token}}
    elif "data" in kwargs:
        kwargs = {**kwargs, "data": kwargs["data"].replace('"T"', json.dumps(token))}
    response = client.post("/api/answer", headers=headers, **kwargs)
    assert response.status_code == status, response.data
    assert app.config["BRAINLDM_STORE"].judgements().empty
    # The trial is still open and can be answered properly.
    assert answer(client, headers, token).status_code == 200


def test_replayed_submission_is_rejected(app, client):
    headers = login(client, "alice")
    token = next_trial(client, headers)["trial"]
    assert answer(client, headers, token, "right").status_code == 200
    replay = answer(client, headers, token, "left")
    assert replay.status_code == 409
    frame = app.config["BRAINLDM_STORE"].judgements()
    assert frame["choice"].tolist() == ["right"]
    # Nor can its images be fetched any more.
    assert client.get(f"/image/{token}/recon").status_code == 404


def test_a_rater_cannot_touch_another_raters_trials(app, client):
    alice = login(client, "alice")
    bob = login(client, "bob")
    token = next_trial(client, alice)["trial"]
    assert answer(client, bob, token).status_code == 404
    assert client.get("/api/me", headers=bob).json["n_done"] == 0
    store = app.config["BRAINLDM_STORE"]
    assert store.judgements().empty and store.open_trial(token).rater == "alice"
    assert answer(client, alice, token, "left").status_code == 200
    # Bob changing alice's answer: his own replay is refused, and his token is not hers.
    assert answer(client, bob, token, "right").status_code == 404
    assert store.judgements()["choice"].tolist() == ["left"]
    # Bob's trials are his own, with another token.
    assert next_trial(client, bob)["trial"] != token


TRAVERSAL = [
    "/index.csv", "/originals/000001.png", "/rating/ratings.sqlite", "/zc/000001_00.png",
    "/static/../index.csv", "/static/%2e%2e/index.csv", "/static/..%2findex.csv",
    "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/static/app.js/..%2f..%2fapp.py",
    "/static/_app.py", "/static/index.html/../../_store.py", "/static/",
    "/image/..%2f..%2findex.csv/recon", "/image/%2e%2e/recon", "/image/../../etc/passwd",
    "/image/TOKEN/..%2f..%2findex.csv", "/image/TOKEN/%2e%2e", "/image/TOKEN/recon/..",
    "/image/TOKEN/../../index.csv", "/image/TOKEN/original", "/image/TOKEN%2f..%2f../recon",
    "//etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%5c..%5cindex.csv", "/%252e%252e/index.csv",
]  # fmt: skip


def _traversal_paths(token):
    return [p.replace("TOKEN", token) for p in TRAVERSAL]


def test_only_the_trial_images_are_served(client):
    headers = login(client, "alice")
    token = next_trial(client, headers)["trial"]
    for path in _traversal_paths(token):
        response = client.get(path)
        assert response.status_code in (400, 404, 405), path
        assert b"nsd_id" not in response.data and b"root:" not in response.data, path


def test_raw_paths_over_http(run_dir, localhost):
    """The same, through the real server (no client-side normalisation of the path)."""
    with server_thread(run_dir) as server:
        host = f"127.0.0.1:{server.port}"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", "/api/login", body=json.dumps({"name": "alice"}),
                     headers={"Content-Type": "application/json", "Host": host})  # fmt: skip
        rater = json.loads(conn.getresponse().read())["token"]
        conn.request("POST", "/api/next", headers={"X-Rater-Token": rater, "Host": host})
        token = json.loads(conn.getresponse().read())["trial"]
        for path in _traversal_paths(token):
            conn.request("GET", path, headers={"Host": host})
            response = conn.getresponse()
            body = response.read()
            assert response.status in (400, 404, 405), path
            assert b"nsd_id" not in body and b"root:" not in body, path
        # Requests for another host name (DNS rebinding) are refused.
        conn.request("GET", "/", headers={"Host": f"evil.example:{server.port}"})
        response = conn.getresponse()
        assert response.status == 400 and b"not served here" in response.read()
        conn.request("GET", "/", headers={"Host": f"localhost:{server.port}"})
        assert conn.getresponse().status == 200
        conn.close()


def test_binds_loopback_by_default_and_warns_otherwise(run_dir):
    from brainldm.rating import make_server

    server = make_server(run_dir, port=0)
    try:
        assert server.host == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
        assert server._server.socket.getsockname()[0] == "127.0.0.1"
    finally:
        server.close()
    with pytest.warns(UserWarning, match="not a loopback address"):
        server = make_server(run_dir, port=0, host="0.0.0.0")
    server.close()
    with pytest.raises(ValueError, match="port must be an integer"):
        make_server(run_dir, port=70000)


def test_settings_cannot_change_between_serves(run_dir):
    create_app(run_dir, seed=1)
    create_app(run_dir, seed=1)
    with pytest.raises(ValueError, match="seed: stored 1, given 2"):
        create_app(run_dir, seed=2)


def test_page_files_are_package_data():
    """A wheel carries the page only if pyproject lists it as package data."""
    import fnmatch
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("no pyproject.toml beside the tests (installed package)")
    config = tomllib.loads(pyproject.read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["brainldm"]
    for name in ("index.html", "app.js", "style.css"):
        assert any(fnmatch.fnmatch(f"rating/static/{name}", p) for p in patterns), (
            f"add 'rating/static/*' to [tool.setuptools.package-data] brainldm in {pyproject}"
        )
