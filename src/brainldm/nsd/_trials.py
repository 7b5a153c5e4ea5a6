"""Trials, the shared-image split, and averaging over repeats."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from brainldm.nsd._design import ExpDesign, load_expdesign, load_responses
from brainldm.nsd._layout import NSDLayout

logger = logging.getLogger(__name__)

RowOrder = Literal["first_presentation", "sorted"]
ROW_ORDERS = ("first_presentation", "sorted")


@dataclass(frozen=True)
class Trials:
    """The trials of one subject, in chronological order.

    Attributes
    ----------
    subject : int
    sessions : ndarray of int, shape (n_trials,)
        Session of each trial, numbered from 1.
    trials : ndarray of int, shape (n_trials,)
        0-based position of the trial within its session (its row in the beta file).
    nsd_ids : ndarray of int, shape (n_trials,)
        0-based id of the image shown.
    """

    subject: int
    sessions: np.ndarray
    trials: np.ndarray
    nsd_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.nsd_ids)

    @property
    def session_list(self) -> list[int]:
        """Sessions present, in order."""
        return [int(s) for s in dict.fromkeys(self.sessions.tolist())]

    def to_frame(self):
        """The table (subject, session, trial, nsd_id) as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            {
                "subject": self.subject,
                "session": self.sessions,
                "trial": self.trials,
                "nsd_id": self.nsd_ids,
            }
        )


@dataclass(frozen=True)
class SplitPreset:
    """Which sessions to use; test = shared images, train = the rest.

    Attributes
    ----------
    name : str
    max_session : int or None
        Use the sessions on disk numbered 1..max_session; None for every session.
    description : str
    """

    name: str
    max_session: int | None
    description: str


#: Train/test split presets. The test set is always the shared images
#: (``sharedix``) averaged over their repeats; training uses single trials.
SPLIT_PRESETS: dict[str, SplitPreset] = {
    # seed_code.md §2: sessions 1-37 (the public release in 2022-23) -> 982 test images (subj01).
    "takagi2023": SplitPreset(
        "takagi2023", 37, "Takagi & Nishimoto 2023: sessions 1-37 (982 shared test images)."
    ),
    # Every released session (1-40 today) -> 1000 shared test images for subjects 1, 2, 5, 7.
    "modern": SplitPreset("modern", None, "All sessions on disk (1000 shared test images)."),
}


def check_subject(layout: NSDLayout, subject: int) -> int:
    """Return ``subject`` if the NSD copy has its folder, else raise listing valid ones."""
    valid = layout.subjects()
    if (
        isinstance(subject, bool)
        or not isinstance(subject, int | np.integer)
        or subject not in valid
    ):
        raise ValueError(
            f"subject={subject!r} is not available under {str(layout.root / 'nsddata/ppdata')!r}; "
            f"valid subjects: {valid}."
        )
    return int(subject)


def resolve_sessions(
    available: Sequence[int], sessions: Sequence[int] | None = None, split: str | None = None
) -> list[int]:
    """Sessions to use: explicit ``sessions`` (checked), else those of the ``split`` preset.

    Parameters
    ----------
    available : sequence of int
        Sessions on disk.
    sessions : sequence of int, optional
        Explicit choice; each must be available.
    split : str, optional
        Name in :data:`SPLIT_PRESETS`; default all available.
    """
    from brainldm._utils import check_option

    available = sorted(int(s) for s in available)
    if sessions is not None:
        sessions = [int(s) for s in sessions]
        unknown = [s for s in sessions if s not in available]
        if unknown or not sessions:
            raise ValueError(
                f"sessions={sessions} includes unavailable session(s) {unknown}; "
                f"available sessions: {available}."
            )
        return sessions
    if split is None:
        return available
    preset = SPLIT_PRESETS[check_option("split", split, SPLIT_PRESETS)]
    chosen = [s for s in available if preset.max_session is None or s <= preset.max_session]
    if not chosen:
        raise ValueError(f"split={split!r} selects no session from the available {available}.")
    return chosen


def load_trials(
    layout: NSDLayout,
    subject: int,
    sessions: Sequence[int] | None = None,
    fmt: str = "hdf5",
    design: ExpDesign | None = None,
) -> Trials:
    """The trial table of one subject, from ``responses.tsv``, checked against the design.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
    sessions : sequence of int, optional
        Sessions to keep (numbered from 1). Default: every session that has both
        behaviour and ``fmt`` beta files.
    fmt : {"hdf5", "nifti", "fsaverage"}
        Beta format used to tell which sessions are on disk.
    design : ExpDesign, optional
        Already loaded ``nsd_expdesign.mat``.

    Returns
    -------
    trials : Trials
    """
    subject = check_subject(layout, subject)
    design = load_expdesign(layout) if design is None else design
    resp = load_responses(layout, subject)
    ids = resp["nsd_id"].to_numpy()
    expected = design.trial_nsd_ids(subject)
    n = min(len(ids), len(expected))
    if len(ids) > len(expected) or not np.array_equal(ids[:n], expected[:n]):
        raise ValueError(
            f"{layout.responses(subject)} and {layout.expdesign()} disagree on the images "
            f"shown to subject {subject}; the files may come from different NSD releases."
        )
    on_disk = set(layout.sessions(subject, fmt))
    available = sorted(set(resp["SESSION"].astype(int)) & on_disk)
    chosen = resolve_sessions(available, sessions)
    rows = [resp[resp["SESSION"] == s] for s in chosen]
    trials = Trials(
        subject=subject,
        sessions=np.concatenate([r["SESSION"].to_numpy(np.int64) for r in rows]),
        trials=np.concatenate([r["trial"].to_numpy(np.int64) for r in rows]),
        nsd_ids=np.concatenate([r["nsd_id"].to_numpy(np.int64) for r in rows]),
    )
    logger.info("subject %d: %d trials in %d sessions", subject, len(trials), len(chosen))
    return trials


def split_shared(nsd_ids: np.ndarray, shared_nsd_ids: np.ndarray) -> np.ndarray:
    """Boolean test mask: True where the image is a shared one.

    Parameters
    ----------
    nsd_ids : ndarray of int, shape (n_trials,)
    shared_nsd_ids : ndarray of int, shape (n_shared,)

    Returns
    -------
    is_test : ndarray of bool, shape (n_trials,)
    """
    return np.isin(np.asarray(nsd_ids), np.asarray(shared_nsd_ids))


def average_repeats(
    X: np.ndarray, nsd_ids: np.ndarray, order: RowOrder = "first_presentation"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average the rows of ``X`` that share an image.

    Parameters
    ----------
    X : ndarray of shape (n_trials, ...)
        Single-trial data.
    nsd_ids : ndarray of int, shape (n_trials,)
        Image of each row.
    order : {"first_presentation", "sorted"}
        Row order of the result: by each image's first trial (the seed code's
        order) or by ``nsd_id``.

    Returns
    -------
    X_mean : ndarray of shape (n_images, ...)
        Mean over each image's repeats (1 to 3 in NSD).
    unique_ids : ndarray of int, shape (n_images,)
    n_repeats : ndarray of int, shape (n_images,)
    """
    from brainldm._utils import check_option

    check_option("order", order, ROW_ORDERS)
    X = np.asarray(X)
    nsd_ids = np.asarray(nsd_ids)
    if X.shape[0] != nsd_ids.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but nsd_ids has {nsd_ids.shape[0]}.")
    unique, first, inverse, counts = np.unique(
        nsd_ids, return_index=True, return_inverse=True, return_counts=True
    )
    sums = np.zeros((len(unique), *X.shape[1:]), dtype=np.result_type(X.dtype, np.float32))
    np.add.at(sums, inverse, X)
    means = sums / counts.reshape(-1, *([1] * (X.ndim - 1)))
    if order == "first_presentation":
        perm = np.argsort(first, kind="stable")
        return means[perm], unique[perm], counts[perm]
    return means, unique, counts
