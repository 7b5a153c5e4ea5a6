"""The two-alternative identification trials of one rater, in the order they are served.

A trial shows one reconstruction (``nsd_id``, ``condition``, ``sample``) above two
candidate originals: the true image and a *foil*, another test image of the run,
one on each side. The rater says which candidate the reconstruction shows; chance
is 0.5 (Takagi & Nishimoto 2023, §4.1, Figure 5 right).

Design, per rater:

- every rated reconstruction is one trial, and each trial is served once;
- the order is a random permutation, so the conditions are interleaved;
- an image's foil is the same in every condition and sample (the paired contrast
  between conditions then does not mix in foil difficulty), and is drawn at random
  from the other images that have an original;
- the side of the true image is random per trial.

Everything is drawn from a generator seeded by (``seed``, the rater's name), so a
rater who comes back gets the same plan, and the plan does not depend on who else
rates or in which order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from brainldm._utils import check_choices
from brainldm.rating._run import RatingRun
from brainldm.reconstruction import CONDITIONS

#: Sides a candidate can be shown on; ``side`` is where the true image is.
SIDES = ("left", "right")
#: Columns of a trial plan.
PLAN_COLUMNS = ("nsd_id", "condition", "sample", "foil", "side")


def _rater_key(rater: str) -> int:
    """Return a stable 64-bit integer from a rater's name (Python's ``hash`` is salted)."""
    return int.from_bytes(hashlib.sha256(rater.encode("utf-8")).digest()[:8], "little")


def rated_reconstructions(
    run: RatingRun, *, max_samples: int | None = 1, conditions: Sequence[str] | None = None
) -> pd.DataFrame:
    """Return the reconstructions that raters judge, sorted by (condition, nsd_id, sample).

    Parameters
    ----------
    run : RatingRun
        From :func:`load_run`.
    max_samples : int or None
        Rate samples ``0 .. max_samples - 1`` of each image and condition; None
        rates every sample. (z has a single sample.)
    conditions : sequence of {"zc", "z", "c"} or None
        Conditions to rate; None rates all those in the run.

    Returns
    -------
    DataFrame with columns ``nsd_id, condition, sample``.
    """
    if max_samples is not None and (isinstance(max_samples, bool) or int(max_samples) < 1):
        raise ValueError(f"max_samples must be a positive integer or None, got {max_samples!r}.")
    if conditions is None:
        conditions = run.conditions
    conditions = check_choices("conditions", conditions, run.conditions)
    if not conditions:
        raise ValueError(f"conditions is empty; choose among {run.conditions}.")
    rows = run.index[run.index["condition"].isin(conditions)]
    if max_samples is not None:
        rows = rows[rows["sample"] < int(max_samples)]
    rows = rows[["nsd_id", "condition", "sample"]].drop_duplicates()
    rank = {c: i for i, c in enumerate(CONDITIONS)}
    rows = rows.assign(_rank=rows["condition"].map(rank))
    rows = rows.sort_values(["_rank", "nsd_id", "sample"], kind="stable")
    return rows.drop(columns="_rank").reset_index(drop=True)


def plan_trials(
    run: RatingRun,
    rater: str,
    *,
    seed: int = 0,
    max_samples: int | None = 1,
    conditions: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return every trial of one rater, in serving order.

    Parameters
    ----------
    run : RatingRun
        From :func:`load_run`.
    rater : str
        The rater's name; with ``seed``, it seeds the plan.
    seed : int
        Base seed of the experiment.
    max_samples, conditions
        Which reconstructions are rated; see :func:`rated_reconstructions`.

    Returns
    -------
    plan : DataFrame
        Columns ``nsd_id, condition, sample, foil, side``: ``foil`` is the 0-based
        id of the other candidate and ``side`` ("left" or "right") where the true
        image is shown.
    """
    trials = rated_reconstructions(run, max_samples=max_samples, conditions=conditions)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, _rater_key(rater)])
    pool = np.asarray(run.original_ids)
    image_ids = np.unique(trials["nsd_id"].to_numpy())
    # Foil of each image: uniform over the *other* originals.
    picks = rng.integers(0, len(pool) - 1, size=len(image_ids))
    own = np.searchsorted(pool, image_ids)
    foils = pool[picks + (picks >= own)]
    foil_of = dict(zip(image_ids.tolist(), foils.tolist(), strict=True))
    order = rng.permutation(len(trials))
    sides = np.asarray(SIDES)[rng.integers(0, 2, size=len(trials))]
    plan = trials.iloc[order].reset_index(drop=True)
    plan["foil"] = plan["nsd_id"].map(foil_of).astype(int)
    plan["side"] = sides
    return plan[list(PLAN_COLUMNS)]
