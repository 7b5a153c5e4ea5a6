"""The rating web app (Flask, one static page, a small JSON API) and its server.

Routes (every other path is a 404; nothing is served from a folder):

======================  =====  ==========================================================
``/``                   GET    the page
``/static/app.js``      GET    its script
``/static/style.css``   GET    its style sheet
``/api/login``          POST   ``{"name", "code"}`` → ``{"rater", "token", "new"}``
``/api/me``             GET    ``{"rater", "n_done", "n_total", "break_every"}``
``/api/next``           POST   the rater's open trial, or a new one, or ``{"done": true}``
``/api/answer``         POST   ``{"trial", "choice", "response_time_ms"}``
``/image/<t>/<which>``  GET    image ``recon``, ``left`` or ``right`` of open trial ``t``
======================  =====  ==========================================================

Security:

- Raters authenticate with a secret token sent in the ``X-Rater-Token`` header
  (kept by the page in ``localStorage``, never in a cookie), so another web site
  cannot make a rater's browser act on the app (no CSRF), and one rater cannot
  act for another. Tokens are stored hashed.
- Images are addressed by the random token of an *open* trial, never by a file
  name: the URL leaks neither a path nor which candidate is true, and only the
  three files of that trial can be reached. ``load_run`` refused index paths
  that leave the run folder, and every serve checks the file again (a file
  replaced by a symbolic link since start-up is refused).
- An image response is its bytes with the same headers for every image: no
  ``ETag``, ``Last-Modified`` or file name (werkzeug's ETag hashes the file's
  path, from which the true candidate could be worked out).
- Submissions must be a JSON object with exactly the expected keys and types, for
  an open trial of the authenticated rater; a second answer to a trial is a 409.
- Bound to 127.0.0.1 by default; then requests whose ``Host`` is not the loopback
  address and port are refused (DNS rebinding).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import os
import warnings
from collections.abc import Sequence
from importlib import resources

from brainldm.rating._run import default_db_path, load_run
from brainldm.rating._store import (
    RaterExistsError,
    RatingStore,
    TrialAnsweredError,
    UnknownRaterError,
    UnknownTrialError,
    check_rater_name,
    normalize_rater_token,
)
from brainldm.rating._trials import SIDES, plan_trials, rated_reconstructions

logger = logging.getLogger(__name__)

#: Longest response time accepted, in ms (one hour); longer ones are malformed.
MAX_RESPONSE_TIME_MS = 3_600_000.0
#: Largest request body accepted, in bytes.
MAX_CONTENT_LENGTH = 4096
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _static_text(name: str) -> str:
    return resources.files("brainldm.rating").joinpath("static").joinpath(name).read_text("utf-8")


def _response_time(value) -> float | None:
    """Return a submitted response time in ms as a float, or None if it is not valid."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return value if math.isfinite(value) and 0 <= value <= MAX_RESPONSE_TIME_MS else None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(
    run_dir: str | os.PathLike,
    db_path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    max_samples: int | None = 1,
    conditions: Sequence[str] | None = None,
    break_every: int = 50,
    allow_signup: bool = True,
    allowed_hosts: Sequence[str] | None = None,
):
    """Build the rating app for one run folder.

    Parameters
    ----------
    run_dir : path-like
        Reconstruction run folder with ``index.csv`` and ``originals/`` (see
        :func:`load_run`).
    db_path : path-like or None
        Ratings database; None uses ``run_dir/rating/ratings.sqlite``.
    seed : int
        Base seed of every rater's plan (see :func:`plan_trials`).
    max_samples : int or None
        Rate the first ``max_samples`` samples of each image and condition; None
        rates all.
    conditions : sequence of {"zc", "z", "c"} or None
        Conditions to rate (interleaved); None rates all those in the run.
    break_every : int
        Offer a break after this many answers; 0 never does.
    allow_signup : bool
        Whether a new name can register itself on the page. When False, only
        raters registered beforehand (``RatingStore.register_rater``) can log in,
        with their token.
    allowed_hosts : sequence of str or None
        Values of the ``Host`` header to accept (``"127.0.0.1:8765"``); None
        accepts any. :func:`make_server` sets it when it binds a loopback address.

    Returns
    -------
    app : flask.Flask
        With ``app.config["BRAINLDM_STORE"]`` (the :class:`RatingStore`),
        ``app.config["BRAINLDM_RUN"]`` (the :class:`RatingRun`) and
        ``app.config["BRAINLDM_N_TRIALS"]`` (trials per rater).

    Raises
    ------
    ValueError
        If the settings differ from those the database was started with.
    """
    try:
        from flask import Flask, Response, abort, jsonify, request
    except ImportError as err:
        raise ImportError(
            "the rating app needs Flask; install it with: pip install 'brainldm[rate]'"
        ) from err

    if isinstance(break_every, bool) or int(break_every) < 0:
        raise ValueError(f"break_every must be a non-negative integer, got {break_every!r}.")
    run = load_run(run_dir)
    # Validate the settings before they are stored; every rater has this many trials.
    conditions = list(run.conditions if conditions is None else conditions)
    n_total = len(rated_reconstructions(run, max_samples=max_samples, conditions=conditions))
    store = RatingStore(default_db_path(run_dir) if db_path is None else db_path)
    plan_kwargs = store.ensure_settings(
        {
            "seed": int(seed),
            "max_samples": None if max_samples is None else int(max_samples),
            "conditions": conditions,
        }
    )

    app = Flask("brainldm.rating", static_folder=None)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
        BRAINLDM_RUN=run,
        BRAINLDM_STORE=store,
        BRAINLDM_N_TRIALS=n_total,
        BRAINLDM_ALLOWED_HOSTS=None if allowed_hosts is None else set(allowed_hosts),
    )
    page = {name: _static_text(name) for name in ("index.html", *_STATIC)}

    def error(status: int, message: str):
        response = jsonify(error=message)
        response.status_code = status
        return response

    @functools.lru_cache(maxsize=1024)
    def plan_for(rater: str) -> tuple[tuple, ...]:
        plan = plan_trials(run, rater, **plan_kwargs)
        return tuple(plan.itertuples(index=False, name=None))

    def authenticated() -> str:
        try:
            return store.rater_for_token(request.headers.get("X-Rater-Token"))
        except UnknownRaterError:
            abort(error(401, "unknown or missing rater token; log in again."))

    def json_object(keys: set[str], optional: frozenset[str] = frozenset()) -> dict:
        try:
            body = request.get_json(silent=True, force=False)
        except RecursionError:  # deeply nested brackets: malformed, not a server error
            body = None
        if not request.is_json or not isinstance(body, dict):
            abort(error(400, "the body must be a JSON object (Content-Type: application/json)."))
        unknown = set(body) - keys - optional
        absent = keys - set(body)
        if unknown or absent:
            abort(
                error(
                    400,
                    f"the body must have the keys {sorted(keys)}"
                    f"{' (optional ' + str(sorted(optional)) + ')' if optional else ''}; "
                    f"unknown {sorted(unknown)}, missing {sorted(absent)}.",
                )
            )
        return body

    def progress(rater: str) -> dict:
        return {
            "rater": rater,
            "n_done": store.n_answered(rater),
            "n_total": n_total,
            "break_every": int(break_every),
        }

    @app.before_request
    def check_host():
        hosts = app.config["BRAINLDM_ALLOWED_HOSTS"]
        if hosts is not None and request.host not in hosts:
            abort(error(400, f"Host {request.host!r} is not served here; use {sorted(hosts)[0]}."))

    @app.after_request
    def security_headers(response):
        for key, value in _HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    @app.get("/")
    def index():
        return page["index.html"], 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/static/<any('app.js', 'style.css'):name>")
    def static_file(name):
        return page[name], 200, {"Content-Type": f"{_STATIC[name]}; charset=utf-8"}

    @app.post("/api/login")
    def login():
        body = json_object({"name"}, frozenset({"code"}))
        name, code = body["name"], body.get("code")
        if code not in (None, ""):
            token = normalize_rater_token(code)
            try:
                rater = store.rater_for_token(token)
            except UnknownRaterError:
                return error(403, "wrong resume code.")
            if name not in (None, "") and name != rater:
                return error(403, "wrong resume code for this name.")
            return jsonify(rater=rater, token=token, new=False)
        try:
            check_rater_name(name)
        except ValueError as err:
            return error(400, str(err))
        if not allow_signup:
            return error(403, "sign-up is closed; open the link you were given.")
        try:
            token = store.register_rater(name)
        except RaterExistsError:
            return error(409, f"{name!r} is taken; enter your resume code to continue as {name}.")
        logger.info("new rater %s", name)
        return jsonify(rater=name, token=token, new=True), 201

    @app.get("/api/me")
    def me():
        return jsonify(progress(authenticated()))

    @app.post("/api/next")
    def next_trial():
        rater = authenticated()
        trial = store.next_trial(rater, plan_for(rater))
        state = progress(rater)
        if trial is None:
            return jsonify(done=True, **state)
        return jsonify(
            done=False,
            trial=trial.token,
            images={w: f"/image/{trial.token}/{w}" for w in ("recon", *SIDES)},
            **state,
        )

    @app.post("/api/answer")
    def answer():
        rater = authenticated()
        body = json_object({"trial", "choice", "response_time_ms"})
        choice, rt = body["choice"], _response_time(body["response_time_ms"])
        if choice not in SIDES:
            return error(400, f"choice={choice!r} is not valid; allowed: {list(SIDES)}.")
        if rt is None:
            shown = repr(body["response_time_ms"])
            return error(
                400,
                f"response_time_ms={shown[:40]}{'...' if len(shown) > 40 else ''} is not "
                f"valid; a number of ms in [0, {MAX_RESPONSE_TIME_MS:g}].",
            )
        try:
            store.record_answer(rater, body["trial"], choice, rt)
        except UnknownTrialError:
            return error(404, "no trial of yours has this token.")
        except TrialAnsweredError:
            return error(409, "this trial has been answered already.")
        return jsonify(ok=True, **progress(rater))

    @app.get("/image/<token>/<any(recon, left, right):which>")
    def image(token, which):
        try:
            trial = store.open_trial(token)
        except UnknownTrialError:
            abort(404)
        if which == "recon":
            path = run.reconstruction_file(trial.nsd_id, trial.condition, trial.sample)
        else:
            path = run.original_file(trial.candidate(which))
        try:
            data = run.read_image(path)
        except (OSError, ValueError) as err:
            logger.warning("refused to serve %s: %s", path, err)
            abort(404)
        # The bytes alone: no ETag, Last-Modified or file name, which would carry
        # something of the file's path (and so of which candidate is true).
        return Response(data, mimetype="image/png")

    return app


class RatingServer:
    """A threaded HTTP server running the rating app (werkzeug).

    Attributes
    ----------
    app : flask.Flask
    host : str
    port : int
        The bound port (the chosen one when ``port=0`` was asked).
    url : str
        Base URL of the page.
    new_raters : dict of str to str
        Raters registered by :func:`make_server`, name → token.
    """

    def __init__(self, app, server, host: str, new_raters: dict[str, str]):
        self.app = app
        self._server = server
        self.host = host
        self.port = int(server.server_port)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        self.new_raters = dict(new_raters)

    def rater_url(self, token: str) -> str:
        """Return the link that logs a rater in (the token travels in the URL fragment)."""
        return f"{self.url}#token={token}"

    def banner(self) -> str:
        """Return what to tell the person running the server."""
        run = self.app.config["BRAINLDM_RUN"]
        store = self.app.config["BRAINLDM_STORE"]
        lines = [
            f"rating run {run.run_dir} on {self.url}",
            f"  {self.app.config['BRAINLDM_N_TRIALS']} trials per rater "
            f"({run.index['nsd_id'].nunique()} images, conditions {', '.join(run.conditions)}); "
            f"answers in {store.path}",
        ]
        if run.n_without_original:
            lines.append(f"  {run.n_without_original} reconstructions skipped: no original")
        for name, token in self.new_raters.items():
            lines.append(f"  {name}: {self.rater_url(token)}")
        lines.append("Press Ctrl+C to stop; answers are saved as they come.")
        return "\n".join(lines)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` or KeyboardInterrupt."""
        self._server.serve_forever()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (call from another thread) and close the socket."""
        self._server.shutdown()
        self.close()

    def close(self) -> None:
        """Close the listening socket."""
        self._server.server_close()


def make_server(
    run_dir: str | os.PathLike,
    db_path: str | os.PathLike | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    raters: Sequence[str] = (),
    **app_kwargs,
) -> RatingServer:
    """Build the app and bind a threaded server to ``host:port`` (not yet serving).

    Parameters
    ----------
    run_dir, db_path
        See :func:`create_app`.
    host : str
        Address to bind. The default, 127.0.0.1, is reachable from this machine
        only; any other address exposes the raters' answers to the network
        without encryption and warns.
    port : int
        Port to bind; 0 picks a free one.
    raters : sequence of str
        Names to register before serving (their links are in ``new_raters`` and
        the banner); names already registered are left as they are.
    **app_kwargs
        ``seed``, ``max_samples``, ``conditions``, ``break_every``,
        ``allow_signup``: see :func:`create_app`.

    Returns
    -------
    server : RatingServer
    """
    from werkzeug.serving import WSGIRequestHandler
    from werkzeug.serving import make_server as werkzeug_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):  # one line per image is noise; errors still log
            pass

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in [0, 65535], got {port!r}.")
    loopback = is_loopback(host)
    if not loopback:
        warnings.warn(
            f"host={host!r} is not a loopback address: the rating app will be reachable "
            "from other machines, without encryption. Use host='127.0.0.1' unless that "
            "is what you want.",
            UserWarning,
            stacklevel=2,
        )
    for name in raters:
        check_rater_name(name)
    app = create_app(run_dir, db_path, **app_kwargs)
    store = app.config["BRAINLDM_STORE"]
    new_raters = {}
    for name in raters:
        try:
            new_raters[name] = store.register_rater(name)
        except RaterExistsError:
            logger.info("rater %s is registered already", name)
    server = werkzeug_server(host, port, app, threaded=True, request_handler=QuietHandler)
    bound = int(server.server_port)
    if loopback:
        app.config["BRAINLDM_ALLOWED_HOSTS"] = {
            f"{name}:{bound}" for name in ("127.0.0.1", "localhost", "[::1]", host)
        }
    return RatingServer(app, server, host, new_raters)


def serve(
    run_dir: str | os.PathLike,
    db_path: str | os.PathLike | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    raters: Sequence[str] = (),
    announce=print,
    **app_kwargs,
) -> None:
    """Serve the rating page for ``run_dir`` until interrupted (Ctrl+C).

    Parameters
    ----------
    run_dir, db_path, host, port, raters, **app_kwargs
        See :func:`make_server` and :func:`create_app`.
    announce : callable or None
        Called with the banner (URL, database, rater links) once the port is
        bound; None says nothing.
    """
    server = make_server(run_dir, db_path, host=host, port=port, raters=raters, **app_kwargs)
    if announce is not None:
        announce(server.banner())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
