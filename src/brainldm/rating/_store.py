"""SQLite store of raters, served trials and judgements (WAL, one commit per answer).

Tables:

``raters``
    ``rater`` (name), ``token_sha256`` (the SHA-256 of the rater's secret token;
    the token itself is never stored), ``created_at``.
``trials``
    One row per trial served: ``trial_id``, ``token`` (random, unguessable; the
    capability the page uses to fetch the trial's images and answer it),
    ``rater``, ``ordinal`` (0-based position in the rater's sequence), ``nsd_id``,
    ``condition``, ``sample``, ``foil``, ``side`` (where the true image is shown),
    ``served_at``. ``UNIQUE(rater, nsd_id, condition, sample)``: the same trial is
    never served twice to one rater.
``judgements``
    One row per answer: ``trial_id``, ``rater``, ``nsd_id``, ``condition``,
    ``sample``, ``foil``, ``side``, ``choice`` ("left" or "right"), ``correct``
    (0 or 1), ``response_time_ms``, ``answered_at``. ``trial_id`` is the primary
    key, so a trial is answered at most once.
``settings``
    The experiment's settings (seed, samples, conditions), fixed at the first
    serve so that a restart cannot change the design half-way.

Every write is its own ``BEGIN IMMEDIATE`` transaction on a fresh connection, so
concurrent requests are serialised by SQLite, and each answer is committed (with
``synchronous=FULL``: on disk, surviving a kill or a power cut) before the server
replies. Serving a trial commits with ``synchronous=NORMAL`` (it survives a kill;
a power cut could only make the open trial be served afresh).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import sqlite3
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from brainldm.rating._trials import SIDES

#: A rater's name: a letter or digit, then letters, digits, ``_ . -``; 1-64 characters.
RATER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
#: A rater token as handed out: 20 lowercase hex characters (80 bits).
RATER_TOKEN = re.compile(r"[0-9a-f]{20}")
#: A trial token: 22 URL-safe base64 characters (128 bits).
TRIAL_TOKEN = re.compile(r"[A-Za-z0-9_\-]{22}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
    rater TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    trial_id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    rater TEXT NOT NULL REFERENCES raters (rater),
    ordinal INTEGER NOT NULL,
    nsd_id INTEGER NOT NULL,
    condition TEXT NOT NULL,
    sample INTEGER NOT NULL,
    foil INTEGER NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('left', 'right')),
    served_at REAL NOT NULL,
    UNIQUE (rater, nsd_id, condition, sample),
    UNIQUE (rater, ordinal)
);
CREATE TABLE IF NOT EXISTS judgements (
    trial_id INTEGER PRIMARY KEY REFERENCES trials (trial_id),
    rater TEXT NOT NULL REFERENCES raters (rater),
    nsd_id INTEGER NOT NULL,
    condition TEXT NOT NULL,
    sample INTEGER NOT NULL,
    foil INTEGER NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('left', 'right')),
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right')),
    correct INTEGER NOT NULL CHECK (correct IN (0, 1)),
    response_time_ms REAL NOT NULL,
    answered_at REAL NOT NULL,
    UNIQUE (rater, nsd_id, condition, sample)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

#: Columns of :meth:`RatingStore.judgements`, in order.
JUDGEMENT_COLUMNS = (
    "rater", "nsd_id", "condition", "sample", "foil", "side", "choice", "correct",
    "response_time_ms", "answered_at", "trial_id",
)  # fmt: skip


class RatingError(Exception):
    """Base class of the errors a rater's request can cause."""


class UnknownRaterError(RatingError, LookupError):
    """No rater has this token (or this name and token)."""


class RaterExistsError(RatingError, ValueError):
    """A rater of this name is already registered."""


class UnknownTrialError(RatingError, LookupError):
    """No trial of this rater has this token."""


class TrialAnsweredError(RatingError, ValueError):
    """The trial has been answered already: a replayed submission."""


@dataclass(frozen=True)
class Trial:
    """One served trial.

    Attributes
    ----------
    token : str
        Random capability of this trial (fetch its images, answer it).
    rater : str
    ordinal : int
        0-based position in the rater's sequence.
    nsd_id : int
        The true image (0-based).
    condition : {"zc", "z", "c"}
    sample : int
    foil : int
        The other candidate (0-based nsd_id).
    side : {"left", "right"}
        Where the true image is shown.
    served_at : float
        Unix time the trial was first served.
    """

    token: str
    rater: str
    ordinal: int
    nsd_id: int
    condition: str
    sample: int
    foil: int
    side: str
    served_at: float

    @property
    def key(self) -> tuple[int, str, int]:
        """Return (nsd_id, condition, sample): what makes the trial unique for its rater."""
        return (self.nsd_id, self.condition, self.sample)

    def candidate(self, which: str) -> int:
        """Return the nsd_id of the original shown on side ``which`` ("left" or "right")."""
        if which not in SIDES:
            raise ValueError(f"which={which!r} is not valid; allowed: {SIDES}.")
        return self.nsd_id if which == self.side else self.foil


def hash_token(token: str) -> str:
    """Return the SHA-256 (hex) of a token, as stored."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def check_rater_name(name) -> str:
    """Return ``name`` if it is a valid rater name, else raise a ValueError."""
    if not isinstance(name, str) or not RATER_NAME.fullmatch(name):
        raise ValueError(
            f"rater name {name!r} is not valid; use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit."
        )
    return name


def normalize_rater_token(token) -> str | None:
    """Turn a rater token as typed (any case, spaces, dashes) into its canonical form, or None."""
    if not isinstance(token, str) or len(token) > 64:
        return None
    token = re.sub(r"[\s\-]", "", token).lower()
    return token if RATER_TOKEN.fullmatch(token) else None


class RatingStore:
    """The ratings database of one experiment.

    Parameters
    ----------
    path : path-like
        SQLite file; created with its folder if missing, and switched to WAL mode.
    timeout : float
        Seconds a connection waits for a lock held by another before failing.

    Notes
    -----
    Each method opens its own connection, so one store can be shared by the
    threads of a server. The store also keeps one idle connection open until
    :meth:`close` (or garbage collection): otherwise every method's connection
    would be the last to close, and SQLite checkpoints the WAL, with an fsync, on
    the last close.
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float = 30.0):
        self.path = Path(path)
        self.timeout = float(timeout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise OSError(f"could not switch {self.path} to WAL mode (got {mode!r}).")
            con.executescript(_SCHEMA)
        self._keeper = sqlite3.connect(self.path, check_same_thread=False)
        self._keeper.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()  # open it
        self._finalizer = weakref.finalize(self, self._keeper.close)

    def close(self) -> None:
        """Close the idle connection (the store stays usable, only slower)."""
        self._finalizer()

    def __enter__(self) -> RatingStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RatingStore({str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA foreign_keys=ON")
            # FULL: a commit is on disk when it returns. NORMAL (WAL): it survives the
            # process being killed, not a power cut; enough for serving a trial.
            con.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def _write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside ``BEGIN IMMEDIATE``; commit on success, else roll back."""
        with self._connect(durable) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- settings -----------------------------------------------------------------

    def ensure_settings(self, settings: dict) -> dict:
        """Store ``settings`` on first use; later, raise if they differ from those stored.

        Parameters
        ----------
        settings : dict
            JSON-serialisable values.

        Returns
        -------
        settings : dict
            The stored settings.
        """
        with self._write() as con:
            stored = {
                row["key"]: json.loads(row["value"])
                for row in con.execute("SELECT key, value FROM settings")
            }
            if not stored:
                con.executemany(
                    "INSERT INTO settings (key, value) VALUES (?, ?)",
                    [(k, json.dumps(v)) for k, v in settings.items()],
                )
                return dict(settings)
        new = json.loads(json.dumps(settings))
        differ = sorted(k for k in set(stored) | set(new) if stored.get(k) != new.get(k))
        if differ:
            detail = ", ".join(
                f"{k}: stored {stored.get(k)!r}, given {new.get(k)!r}" for k in differ
            )
            raise ValueError(
                f"{self.path} belongs to an experiment with other settings ({detail}); "
                "serve with the stored settings, or use another database."
            )
        return stored

    # -- raters -------------------------------------------------------------------

    def register_rater(self, name: str) -> str:
        """Register a new rater; return their secret token (shown once, stored hashed).

        Raises
        ------
        ValueError
            If the name is not valid.
        RaterExistsError
            If the name is taken.
        """
        check_rater_name(name)
        token = secrets.token_hex(10)
        try:
            with self._write() as con:
                con.execute(
                    "INSERT INTO raters (rater, token_sha256, created_at) VALUES (?, ?, ?)",
                    (name, hash_token(token), time.time()),
                )
        except sqlite3.IntegrityError:
            raise RaterExistsError(f"rater {name!r} is already registered.") from None
        return token

    def rater_for_token(self, token) -> str:
        """Return the name of the rater holding ``token``; UnknownRaterError if none."""
        token = normalize_rater_token(token)
        if token is None:
            raise UnknownRaterError("no rater has this token.")
        with self._connect() as con:
            row = con.execute(
                "SELECT rater FROM raters WHERE token_sha256 = ?", (hash_token(token),)
            ).fetchone()
        if row is None:
            raise UnknownRaterError("no rater has this token.")
        return row["rater"]

    def raters(self) -> list[str]:
        """Return the names of every registered rater, sorted."""
        with self._connect() as con:
            return [r["rater"] for r in con.execute("SELECT rater FROM raters ORDER BY rater")]

    # -- trials -------------------------------------------------------------------

    @staticmethod
    def _trial(row: sqlite3.Row) -> Trial:
        return Trial(
            row["token"], row["rater"], row["ordinal"], row["nsd_id"], row["condition"],
            row["sample"], row["foil"], row["side"], row["served_at"],
        )  # fmt: skip

    def next_trial(
        self, rater: str, plan: Iterable[tuple[int, str, int, int, str]]
    ) -> Trial | None:
        """Return the rater's open trial, or else serve the first trial of ``plan`` not yet served.

        An open trial (served, not answered, e.g. before a reload or a server
        restart) is returned again, unchanged, until it is answered; a trial that
        has been served is never served as a new one.

        Parameters
        ----------
        rater : str
            A registered rater.
        plan : iterable of (nsd_id, condition, sample, foil, side)
            The rater's trials in serving order (see :func:`plan_trials`).

        Returns
        -------
        trial : Trial or None
            None when every trial of the plan has been answered.
        """
        with self._write(durable=False) as con:
            row = con.execute(
                "SELECT t.* FROM trials t WHERE t.rater = ? AND NOT EXISTS "
                "(SELECT 1 FROM judgements j WHERE j.trial_id = t.trial_id) "
                "ORDER BY t.ordinal LIMIT 1",
                (rater,),
            ).fetchone()
            if row is not None:
                return self._trial(row)
            served = {
                (r["nsd_id"], r["condition"], r["sample"])
                for r in con.execute(
                    "SELECT nsd_id, condition, sample FROM trials WHERE rater = ?", (rater,)
                )
            }
            for nsd_id, condition, sample, foil, side in plan:
                key = (int(nsd_id), str(condition), int(sample))
                if key in served:
                    continue
                values = dict(
                    token=secrets.token_urlsafe(16), rater=rater, ordinal=len(served),
                    nsd_id=key[0], condition=key[1], sample=key[2], foil=int(foil),
                    side=str(side), served_at=time.time(),
                )  # fmt: skip
                con.execute(
                    f"INSERT INTO trials ({', '.join(values)}) "
                    f"VALUES ({', '.join(':' + k for k in values)})",
                    values,
                )
                return Trial(**values)
        return None

    def open_trial(self, token) -> Trial:
        """Return the unanswered trial with this token; UnknownTrialError if none."""
        if not isinstance(token, str) or not TRIAL_TOKEN.fullmatch(token):
            raise UnknownTrialError("no open trial has this token.")
        with self._connect() as con:
            row = con.execute(
                "SELECT t.* FROM trials t WHERE t.token = ? AND NOT EXISTS "
                "(SELECT 1 FROM judgements j WHERE j.trial_id = t.trial_id)",
                (token,),
            ).fetchone()
        if row is None:
            raise UnknownTrialError("no open trial has this token.")
        return self._trial(row)

    def record_answer(self, rater: str, token: str, choice: str, response_time_ms: float) -> bool:
        """Store one judgement, committed before returning.

        Parameters
        ----------
        rater : str
            The authenticated rater; the trial must be theirs.
        token : str
            The trial's token.
        choice : {"left", "right"}
            The side the rater picked.
        response_time_ms : float
            From the moment the images were shown to the answer.

        Returns
        -------
        correct : bool

        Raises
        ------
        UnknownTrialError
            If no trial of ``rater`` has this token (another rater's trial included).
        TrialAnsweredError
            If the trial has been answered already.
        """
        if choice not in SIDES:
            raise ValueError(f"choice={choice!r} is not valid; allowed: {SIDES}.")
        if not isinstance(token, str) or not TRIAL_TOKEN.fullmatch(token):
            raise UnknownTrialError("no trial of this rater has this token.")
        with self._write() as con:
            row = con.execute(
                "SELECT * FROM trials WHERE token = ? AND rater = ?", (token, rater)
            ).fetchone()
            if row is None:
                raise UnknownTrialError("no trial of this rater has this token.")
            correct = int(choice == row["side"])
            try:
                con.execute(
                    "INSERT INTO judgements (trial_id, rater, nsd_id, condition, sample, foil, "
                    "side, choice, correct, response_time_ms, answered_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row["trial_id"], rater, row["nsd_id"], row["condition"], row["sample"],
                     row["foil"], row["side"], choice, correct, float(response_time_ms),
                     time.time()),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                raise TrialAnsweredError("this trial has been answered already.") from None
        return bool(correct)

    def n_answered(self, rater: str) -> int:
        """Return how many judgements ``rater`` has made."""
        with self._connect() as con:
            return con.execute(
                "SELECT COUNT(*) FROM judgements WHERE rater = ?", (rater,)
            ).fetchone()[0]

    def judgements(self, rater: str | None = None):
        """Return every judgement (of one rater, or of all) as a DataFrame.

        Returns
        -------
        DataFrame
            Columns ``JUDGEMENT_COLUMNS``, sorted by rater and answer time.
        """
        import pandas as pd

        query = f"SELECT {', '.join(JUDGEMENT_COLUMNS)} FROM judgements"
        params: tuple = ()
        if rater is not None:
            query += " WHERE rater = ?"
            params = (rater,)
        with self._connect() as con:
            rows = con.execute(query + " ORDER BY rater, answered_at, trial_id", params).fetchall()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=list(JUDGEMENT_COLUMNS))
        return frame.astype(
            {"nsd_id": int, "sample": int, "foil": int, "correct": int, "trial_id": int,
             "response_time_ms": float, "answered_at": float}
        )  # fmt: skip
