"""Human identification accuracy and the paper's tests between conditions.

Takagi & Nishimoto 2023 (§4.1, Figure 5 right): raters judged, for each
reconstruction, which of two candidates is the original; chance is 0.5. The
conditions (z, c, zc) were compared with "two-sided signed-rank test, FWE
corrected". Here:

- **accuracy** of a rater in a condition is the fraction of their correct
  judgements; the pooled accuracy is that fraction over every rater, and its
  ``sem`` is the standard error of the per-image accuracy (the paper's error bars);
- **per-image accuracy** is the mean of the correct judgements of an image in a
  condition, over raters (and samples);
- each pair of conditions is compared by a two-sided Wilcoxon signed-rank test
  on the per-image accuracies of the images rated in both (zero differences
  dropped), and the family of pairwise p-values is corrected by Holm's method,
  which controls the family-wise error rate.

The tests are those of the objective evaluation,
:func:`brainldm.evaluation.compare_conditions` and
:func:`brainldm.evaluation.adjust_pvalues`, with the per-image accuracy as the score.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainldm._utils import atomic_path, check_choices, write_json_atomic
from brainldm.evaluation import adjust_pvalues, compare_conditions
from brainldm.rating._run import RATING_DIR, default_db_path
from brainldm.rating._store import JUDGEMENT_COLUMNS
from brainldm.reconstruction import CONDITIONS, RATING_RESULTS_FILE

#: Chance level of a two-alternative trial.
CHANCE = 0.5
#: Order in which conditions are reported (the paper's Figure 5).
REPORT_ORDER = ("z", "c", "zc")
_FILES = {
    "per_rater": "rating_per_rater.csv",
    "pooled": "rating_pooled.csv",
    "per_image": "rating_per_image.csv",
    "tests": "rating_tests.csv",
}


# Pseudo-condition of per-image accuracy 0.5: the signed-rank test of a condition
# against chance is the paired test against it (differences accuracy - 0.5).
_CHANCE_CONDITION = "__chance__"


def _signed_rank_tests(
    per_image: pd.DataFrame, image_key: list[str], conditions: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Two-sided signed-rank tests of per-image accuracy, between conditions and to chance.

    Parameters
    ----------
    per_image : DataFrame
        Columns ``image_key``, ``condition`` and ``accuracy``, one row per image
        and condition.
    image_key : list of str
        Columns that tell images apart (``nsd_id``, or ``run`` and ``nsd_id``).
    conditions : sequence of str
        The conditions to test, in the order of the pairs.

    Returns
    -------
    pairs : DataFrame
        One row per pair of the ``conditions`` present: ``condition_a``,
        ``condition_b``, ``n_images``, ``accuracy_a``, ``accuracy_b``,
        ``statistic`` (Wilcoxon T; 0 when every difference is zero), ``p_value``
        (uncorrected).
    p_chance : dict of str to float
        p-value of each condition present against an accuracy of 0.5.
    """
    columns = ["condition_a", "condition_b", "n_images", "accuracy_a", "accuracy_b",
               "statistic", "p_value"]  # fmt: skip
    present = [c for c in conditions if c in set(per_image["condition"])]
    if not present:
        return pd.DataFrame(columns=columns), {}
    images = per_image.groupby(image_key, sort=True).ngroup()  # numbered in sorted order
    scores = pd.DataFrame(
        {
            "subject": "all",
            "condition": per_image["condition"].to_numpy(),
            "nsd_id": images.to_numpy(),
            "metric": "accuracy",
            "score": per_image["accuracy"].to_numpy(dtype=float),
        }
    )
    chance = pd.DataFrame(
        {
            "subject": "all",
            "condition": _CHANCE_CONDITION,
            "nsd_id": np.unique(images.to_numpy()),
            "metric": "accuracy",
            "score": CHANCE,
        }
    )
    table = compare_conditions(
        pd.concat([scores, chance], ignore_index=True),
        conditions=[*present, _CHANCE_CONDITION],
        correction="none",
    )
    to_chance = table["condition_b"] == _CHANCE_CONDITION
    p_chance = dict(zip(table["condition_a"][to_chance], table["p_value"][to_chance], strict=True))
    pairs = table[~to_chance].rename(columns={"mean_a": "accuracy_a", "mean_b": "accuracy_b"})
    pairs = pairs[columns].reset_index(drop=True)
    # Every difference zero: Wilcoxon's T is 0 (compare_conditions leaves it NaN).
    pairs.loc[(pairs["n_images"] > 0) & pairs["statistic"].isna(), "statistic"] = 0.0
    return pairs, p_chance


def _binomial_p(n_correct: int, n: int) -> float:
    from scipy.stats import binomtest

    return float(binomtest(int(n_correct), int(n), CHANCE).pvalue) if n else math.nan


@dataclass(frozen=True)
class RatingResults:
    """Human two-alternative identification: accuracies and tests between conditions.

    Attributes
    ----------
    per_rater : DataFrame
        One row per (rater, condition): ``n_judgements``, ``n_correct``,
        ``accuracy``, ``sem`` (binomial, sqrt(a(1 - a)/n)), ``p_chance`` (two-sided
        exact binomial test against 0.5).
    pooled : DataFrame
        One row per condition: ``n_raters``, ``n_images``, ``n_judgements``,
        ``n_correct``, ``accuracy``, ``sem`` (of the per-image accuracy),
        ``p_chance`` (two-sided signed-rank test of the per-image accuracy
        against 0.5).
    per_image : DataFrame
        One row per image key (``run`` if present, ``nsd_id``) and condition:
        ``n_judgements``, ``accuracy``.
    tests : DataFrame
        One row per pair of conditions: ``condition_a``, ``condition_b``,
        ``n_images`` (rated in both), ``accuracy_a``, ``accuracy_b`` (mean
        per-image accuracy over those images), ``statistic`` (Wilcoxon T),
        ``p_value`` (two-sided), ``p_holm`` (Holm-corrected over the pairs),
        ``significant`` (``p_holm < alpha``).
    alpha : float
        Family-wise error rate of ``significant``.
    """

    per_rater: pd.DataFrame = field(repr=False)
    pooled: pd.DataFrame = field(repr=False)
    per_image: pd.DataFrame = field(repr=False)
    tests: pd.DataFrame = field(repr=False)
    alpha: float = 0.05

    def to_dict(self) -> dict:
        """JSON-ready summary (``per_image`` left out; NaN becomes None)."""

        def records(frame: pd.DataFrame) -> list[dict]:
            rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
            return [
                {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows
            ]

        return {
            "chance": CHANCE,
            "test": "two-sided Wilcoxon signed-rank on per-image accuracy",
            "correction": "holm",
            "alpha": self.alpha,
            "per_rater": records(self.per_rater),
            "pooled": records(self.pooled),
            "tests": records(self.tests),
        }

    def summary(self) -> str:
        """Return a few lines of text: pooled accuracy per condition, then the tests."""
        lines = []
        for row in self.pooled.itertuples():
            lines.append(
                f"{row.condition:>3}: accuracy {row.accuracy:.3f} ± {row.sem:.3f} (sem), "
                f"{row.n_judgements} judgements of {row.n_images} images by {row.n_raters} rater(s)"
            )
        for row in self.tests.itertuples():
            lines.append(
                f"{row.condition_a} vs {row.condition_b}: {row.accuracy_a:.3f} vs "
                f"{row.accuracy_b:.3f} on {row.n_images} images, p = {row.p_value:.3g}, "
                f"Holm p = {row.p_holm:.3g}{' *' if row.significant else ''}"
            )
        return "\n".join(lines) if lines else "no judgements yet"


def rating_results(
    judgements: pd.DataFrame,
    *,
    conditions: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> RatingResults:
    """Per-rater and pooled accuracy per condition, and signed-rank tests between conditions.

    Parameters
    ----------
    judgements : DataFrame
        One row per judgement with at least ``rater``, ``nsd_id``, ``condition``,
        ``correct`` (as :meth:`RatingStore.judgements` returns). To pool runs
        (e.g. subjects, whose test images share ``nsd_id``), concatenate their
        judgements with a ``run`` column: images are then told apart by
        (``run``, ``nsd_id``).
    conditions : sequence of {"zc", "z", "c"} or None
        Conditions to report, in this order; None reports those present, in the
        order z, c, zc.
    alpha : float
        Family-wise error rate for ``significant``.

    Returns
    -------
    results : RatingResults
    """
    needed = {"rater", "nsd_id", "condition", "correct"}
    missing = sorted(needed - set(judgements.columns))
    if missing:
        raise ValueError(
            f"judgements lacks the column(s) {missing}; expected at least {sorted(needed)}."
        )
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    present = set(judgements["condition"])
    check_choices("judgements['condition']", sorted(present), CONDITIONS)
    if conditions is None:
        conditions = [c for c in REPORT_ORDER if c in present]
    conditions = check_choices("conditions", conditions, CONDITIONS)
    data = judgements[judgements["condition"].isin(conditions)].copy()
    data["correct"] = data["correct"].astype(int)
    image_key = ["run", "nsd_id"] if "run" in data.columns else ["nsd_id"]
    rank = {c: i for i, c in enumerate(conditions)}

    def by_condition(frame: pd.DataFrame, first: Sequence[str]) -> pd.DataFrame:
        return frame.sort_values(
            [*first, "condition"], key=lambda s: s.map(rank) if s.name == "condition" else s
        ).reset_index(drop=True)

    # Per rater.
    per_rater = (
        data.groupby(["rater", "condition"])["correct"]
        .agg(n_judgements="size", n_correct="sum")
        .reset_index()
    )
    per_rater["accuracy"] = per_rater["n_correct"] / per_rater["n_judgements"]
    acc = per_rater["accuracy"]
    per_rater["sem"] = np.sqrt(acc * (1 - acc) / per_rater["n_judgements"])
    per_rater["p_chance"] = [
        _binomial_p(k, n)
        for k, n in zip(per_rater["n_correct"], per_rater["n_judgements"], strict=True)
    ]
    per_rater = by_condition(per_rater, ["rater"])

    # Per image, pooled over raters (and samples).
    per_image = (
        data.groupby([*image_key, "condition"])["correct"]
        .agg(n_judgements="size", accuracy="mean")
        .reset_index()
    )
    per_image = by_condition(per_image, image_key)

    # Signed-rank tests on the per-image accuracies.
    tests, p_chance = _signed_rank_tests(per_image, image_key, conditions)

    # Pooled.
    pooled_rows = []
    for condition in conditions:
        rows = data[data["condition"] == condition]
        images = per_image[per_image["condition"] == condition]["accuracy"].to_numpy()
        if rows.empty:
            continue
        sem = images.std(ddof=1) / np.sqrt(len(images)) if len(images) > 1 else math.nan
        pooled_rows.append(
            dict(
                condition=condition,
                n_raters=int(rows["rater"].nunique()),
                n_images=int(len(images)),
                n_judgements=int(len(rows)),
                n_correct=int(rows["correct"].sum()),
                accuracy=float(rows["correct"].mean()),
                sem=float(sem),
                p_chance=float(p_chance[condition]),
            )
        )
    pooled = pd.DataFrame(
        pooled_rows,
        columns=["condition", "n_raters", "n_images", "n_judgements", "n_correct",
                 "accuracy", "sem", "p_chance"],
    )  # fmt: skip

    # Holm over the pairs of conditions.
    tests["p_holm"] = adjust_pvalues(tests["p_value"].to_numpy(dtype=float), "holm")
    tests["significant"] = tests["p_holm"] < alpha
    return RatingResults(per_rater, pooled, per_image, tests, float(alpha))


def write_rating_results(results: RatingResults, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the tables as CSV and the summary as JSON, each atomically.

    Returns
    -------
    paths : dict of str to Path
        ``per_rater``, ``pooled``, ``per_image``, ``tests`` (CSV) and ``json``.
    """
    out_dir = Path(out_dir)
    paths = {}
    for name, file in _FILES.items():
        path = out_dir / file
        with atomic_path(path) as tmp:
            getattr(results, name).to_csv(tmp, index=False)
        paths[name] = path
    paths["json"] = write_json_atomic(out_dir / RATING_RESULTS_FILE, results.to_dict())
    return paths


def load_judgements(db_path: str | os.PathLike) -> pd.DataFrame:
    """Every judgement in a ratings database (columns ``JUDGEMENT_COLUMNS``).

    Raises
    ------
    FileNotFoundError
        If ``db_path`` does not exist (it is not created).
    """
    from brainldm.rating._store import RatingStore

    if not Path(db_path).is_file():
        raise FileNotFoundError(
            f"db_path={str(db_path)!r} does not exist; start rating with brainldm rate serve."
        )
    frame = RatingStore(db_path).judgements()
    return frame[list(JUDGEMENT_COLUMNS)]


def summarize_ratings(
    run_dir: str | os.PathLike,
    db_path: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    alpha: float = 0.05,
) -> tuple[RatingResults, dict[str, Path]]:
    """Read a run's ratings, compute :func:`rating_results` and write them.

    Parameters
    ----------
    run_dir : path-like
        The reconstruction run folder.
    db_path : path-like or None
        Ratings database; None uses ``run_dir/rating/ratings.sqlite``.
    out_dir : path-like or None
        Where the CSV and JSON files go; None uses ``run_dir/rating``.
    alpha : float
        Family-wise error rate for ``significant``.

    Returns
    -------
    results : RatingResults
    paths : dict of str to Path
        The files written (see :func:`write_rating_results`).
    """
    db_path = default_db_path(run_dir) if db_path is None else Path(db_path)
    out_dir = Path(run_dir) / RATING_DIR if out_dir is None else Path(out_dir)
    results = rating_results(load_judgements(db_path), alpha=alpha)
    return results, write_rating_results(results, out_dir)
