"""The fake NSD's experimental design, trials and behavioural responses.

As in NSD, ids are 1-based on disk: ``nsd_expdesign.mat`` plans every image of
a subject three times (``masterordering`` into ``subjectim``), and
``responses.tsv`` has NSD's 19 columns, one row per trial.
"""

from __future__ import annotations

import numpy as np

from brainldm._utils import atomic_path
from brainldm.nsd import NSDLayout, Trials

_RESPONSES_COLUMNS = (
    "SUBJECT", "SESSION", "RUN", "TRIAL", "73KID", "10KID", "TIME", "ISOLD", "ISCORRECT",
    "RT", "CHANGEMIND", "MEMORYRECENT", "MEMORYFIRST", "ISOLDCURRENT", "ISCORRECTCURRENT",
    "TOTAL1", "TOTAL2", "BUTTON", "MISSINGDATA",
)  # fmt: skip
_RUNS_PER_SESSION = 12


def _masterordering(rng: np.random.Generator, n_images: int) -> np.ndarray:
    """0-based image of each design trial: every image 3 times, new ones until the end.

    As in NSD, images keep being introduced throughout the sessions, and an
    image's repeats follow its first showing; so dropping the last sessions
    drops some images entirely and leaves others with 1 or 2 repeats.
    """
    t1 = rng.random(n_images)
    t2 = t1 + (1 - t1) * rng.random(n_images)
    t3 = t2 + (1 - t2) * rng.random(n_images)
    times = np.concatenate([t1, t2, t3])
    return np.tile(np.arange(n_images), 3)[np.argsort(times, kind="stable")]


def _runs(n_trials: int) -> tuple[np.ndarray, np.ndarray]:
    """RUN (1-based) and TRIAL within run (1-based) for one session, NSD's 12 runs."""
    n_runs = min(_RUNS_PER_SESSION, n_trials)
    sizes = np.full(n_runs, n_trials // n_runs)
    extra = n_trials - sizes.sum()
    # Odd runs (1, 3, ...) take the extra trials first: 63 vs 62 in NSD's 750.
    odd_first = np.r_[np.arange(0, n_runs, 2), np.arange(1, n_runs, 2)]
    sizes[odd_first[:extra]] += 1
    run = np.repeat(np.arange(1, n_runs + 1), sizes)
    trial = np.concatenate([np.arange(1, s + 1) for s in sizes])
    return run, trial


def _write_design(
    layout: NSDLayout,
    rng: np.random.Generator,
    *,
    n_stimuli: int,
    n_needed: int,
    n_shared: int,
    n_subject_rows: int,
    n_per_subject: int,
    n_design_sessions: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the design and write ``nsd_expdesign.mat`` (1-based on disk).

    Returns
    -------
    shared : ndarray of int, shape (n_shared,)
        0-based ids of the shared images, in ``sharedix`` order.
    subjectim : ndarray of int, shape (n_subject_rows, n_per_subject)
        0-based images of each subject: the shared ones first.
    masterordering : ndarray of int, shape (3 * n_per_subject,)
        0-based column of ``subjectim`` shown at each design trial.
    """
    from scipy.io import savemat

    universe = rng.permutation(n_stimuli)[:n_needed]
    shared = universe[:n_shared]
    own = universe[n_shared:].reshape(n_subject_rows, -1)
    subjectim = np.concatenate([np.tile(shared, (n_subject_rows, 1)), own], axis=1)
    masterordering = _masterordering(rng, n_per_subject)
    path = layout.expdesign()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        savemat(
            tmp,
            {
                "masterordering": (masterordering + 1).astype(float)[None, :],
                "subjectim": (subjectim + 1).astype(float),
                "sharedix": (shared + 1).astype(float)[None, :],
                "basiccnt": np.zeros((3, n_design_sessions)),
                "stimpattern": np.zeros((n_design_sessions, _RUNS_PER_SESSION, 75)),
            },
        )
    return shared, subjectim, masterordering


def _subject_trials(
    subject: int,
    n_sessions: int,
    n_trials_per_session: int,
    subjectim: np.ndarray,
    masterordering: np.ndarray,
) -> Trials:
    """Every trial of a subject that ran ``n_sessions``: the design's first trials."""
    T = n_trials_per_session
    n = n_sessions * T
    return Trials(
        subject=subject,
        sessions=np.repeat(np.arange(1, n_sessions + 1), T),
        trials=np.tile(np.arange(T), n_sessions),
        nsd_ids=subjectim[subject - 1, masterordering[:n]],
    )


def _write_responses(
    layout: NSDLayout, subject: int, trials: Trials, rng: np.random.Generator
) -> None:
    """``responses.tsv``: 19 columns, 1-based ids, one row per trial."""
    import pandas as pd

    n = len(trials)
    run = np.empty(n, dtype=int)
    trial_in_run = np.empty(n, dtype=int)
    for session in np.unique(trials.sessions):
        rows = np.flatnonzero(trials.sessions == session)
        run[rows], trial_in_run[rows] = _runs(len(rows))
    seen: set[int] = set()
    is_old = np.empty(n, dtype=int)
    for k, nsd_id in enumerate(trials.nsd_ids):
        is_old[k] = int(nsd_id) in seen
        seen.add(int(nsd_id))
    rt = rng.uniform(400, 1500, n)
    rt[rng.random(n) < 0.02] = np.nan
    frame = pd.DataFrame(
        {
            "SUBJECT": subject,
            "SESSION": trials.sessions,
            "RUN": run,
            "TRIAL": trial_in_run,
            "73KID": trials.nsd_ids + 1,
            "10KID": 0,  # filled below
            "TIME": np.round(np.arange(n) * 4.0 / 86400 + 737000, 6),
            "ISOLD": is_old,
            "ISCORRECT": (rng.random(n) < 0.8).astype(int),
            "RT": np.round(rt, 1),
            "CHANGEMIND": np.where(rng.random(n) < 0.05, 1.0, np.nan),
            "MEMORYRECENT": np.nan,
            "MEMORYFIRST": np.nan,
            "ISOLDCURRENT": is_old,
            "ISCORRECTCURRENT": (rng.random(n) < 0.8).astype(int),
            "TOTAL1": 0,
            "TOTAL2": 0,
            "BUTTON": rng.integers(1, 3, n),
            "MISSINGDATA": 0,
        },
        columns=list(_RESPONSES_COLUMNS),
    )
    # 10KID: the 1-based position of the image in the subject's list (subjectim column).
    from scipy.io import loadmat

    subjectim = loadmat(layout.expdesign(), variable_names=["subjectim"])["subjectim"]
    position = {int(v) - 1: k + 1 for k, v in enumerate(subjectim[subject - 1])}
    frame["10KID"] = [position[int(i)] for i in trials.nsd_ids]
    path = layout.responses(subject)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
