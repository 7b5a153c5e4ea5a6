"""Summary tables, bootstrap intervals over images, and paired tests between conditions.

Scores are in long format: one row per (subject, condition, nsd_id, metric)
with a ``score`` column (see :class:`EvaluationResult`).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from brainldm._utils import atomic_path, check_option, check_positive_int

POOLED = "pooled"
SCORE_COLUMNS = ("subject", "condition", "nsd_id", "metric", "score")


def save_table(table, path: str | os.PathLike) -> Path:
    """Write a DataFrame as CSV through a temporary file (never half-written)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def bootstrap_ci(
    values, *, n_bootstrap: int = 1000, confidence: float = 0.95, random_state=0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling images with replacement.

    Parameters
    ----------
    values : array of shape (n_images,)
        One score per image; NaNs are dropped.
    n_bootstrap : int
    confidence : float in (0, 1)
    random_state : int or numpy Generator
        Seed: the same seed and number of images give the same resamples.

    Returns
    -------
    low, high : float
        NaN when there are no finite values.
    """
    n_bootstrap = check_positive_int("n_bootstrap", n_bootstrap)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}.")
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(random_state)
    means = np.empty(n_bootstrap)
    chunk = max(1, 2_000_000 // values.size)  # bounds the index array
    for start in range(0, n_bootstrap, chunk):
        stop = min(start + chunk, n_bootstrap)
        means[start:stop] = values[rng.integers(0, values.size, (stop - start, values.size))].mean(
            1
        )
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def _check_scores(scores):
    import pandas as pd

    if not isinstance(scores, pd.DataFrame):
        raise TypeError(f"scores must be a pandas DataFrame; got {type(scores).__name__}.")
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lacks column(s) {missing}; expected {list(SCORE_COLUMNS)}.")
    scores = scores.copy()
    scores["subject"] = scores["subject"].astype(object).where(scores["subject"].notna(), "-")
    scores["condition"] = scores["condition"].astype(object).where(scores["condition"].notna(), "-")
    return scores


def _pooled(scores):
    """Per image, the mean over subjects: the unit of the pooled statistics is the image."""
    subjects = scores["subject"].unique()
    if len(subjects) < 2:
        return None
    pooled = scores.groupby(["condition", "metric", "nsd_id"], as_index=False, sort=False)[
        "score"
    ].mean()
    pooled.insert(0, "subject", POOLED)
    return pooled


def summarize(scores, *, n_bootstrap: int = 1000, confidence: float = 0.95, random_state=0):
    """Mean score and bootstrap interval per subject, condition and metric, plus pooled rows.

    Parameters
    ----------
    scores : pandas.DataFrame
        Long format with columns ``subject, condition, nsd_id, metric, score``.
    n_bootstrap, confidence, random_state
        See :func:`bootstrap_ci`. Every group of the same size is resampled
        with the same image indices.

    Returns
    -------
    table : pandas.DataFrame
        Columns ``subject, condition, metric, n_images, mean, ci_low, ci_high``.
        With two or more subjects, rows with ``subject="pooled"`` summarise
        the per-image mean over subjects (so images, not subject × image
        pairs, are resampled).

    Notes
    -----
    An identification score of an image depends on the other test images (its
    distractors); resampling images treats the per-image accuracies as fixed,
    so the interval covers the choice of test images only approximately.
    """
    import pandas as pd

    scores = _check_scores(scores)
    parts = [scores]
    pooled = _pooled(scores)
    if pooled is not None:
        parts.append(pooled)
    rows = []
    for part in parts:
        for (subject, condition, metric), group in part.groupby(
            ["subject", "condition", "metric"], sort=False
        ):
            values = group["score"].to_numpy(dtype=np.float64)
            finite = values[np.isfinite(values)]
            low, high = bootstrap_ci(
                finite, n_bootstrap=n_bootstrap, confidence=confidence, random_state=random_state
            )
            rows.append(
                dict(
                    subject=subject,
                    condition=condition,
                    metric=metric,
                    n_images=finite.size,
                    mean=float(finite.mean()) if finite.size else float("nan"),
                    ci_low=low,
                    ci_high=high,
                )
            )
    return pd.DataFrame(
        rows, columns=["subject", "condition", "metric", "n_images", "mean", "ci_low", "ci_high"]
    )


def adjust_pvalues(p_values, method: str = "holm") -> np.ndarray:
    """Family-wise error correction of p-values.

    Parameters
    ----------
    p_values : array of shape (n_tests,)
        NaNs are kept and not counted in the family.
    method : {"holm", "bonferroni", "none"}
        Holm's step-down procedure (uniformly more powerful than Bonferroni,
        same guarantee), Bonferroni, or no correction.

    Returns
    -------
    adjusted : ndarray of shape (n_tests,)
        Capped at 1.
    """
    check_option("method", method, ("holm", "bonferroni", "none"))
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0 or method == "none":
        out[ok] = p[ok]
        return out
    pv = p[ok]
    if method == "bonferroni":
        out[ok] = np.minimum(1.0, pv * m)
        return out
    order = np.argsort(pv, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * pv[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, stepped)
    out[ok] = adjusted
    return out


def compare_conditions(
    scores,
    *,
    conditions=None,
    metrics=None,
    correction: str = "holm",
):
    """Two-sided Wilcoxon signed-rank tests between conditions, paired by image.

    Parameters
    ----------
    scores : pandas.DataFrame
        Long format with columns ``subject, condition, nsd_id, metric, score``.
    conditions : sequence of str, optional
        Which conditions to compare, every pair of them (default: those present,
        in the order "zc", "z", "c", then any others).
    metrics : sequence of str, optional
        Default: every metric present.
    correction : {"holm", "bonferroni", "none"}
        Family-wise correction over **every test in the returned table** (all
        subjects, pooled rows, metrics and pairs). Call once per metric for
        per-metric families.

    Returns
    -------
    table : pandas.DataFrame
        One row per (subject, metric, pair) with columns ``subject, metric,
        condition_a, condition_b, n_images, mean_a, mean_b, mean_difference
        (a − b), statistic, p_value, p_adjusted, correction``. With two or more
        subjects, ``subject="pooled"`` rows test the per-image means over
        subjects (images are the paired units).

    Notes
    -----
    ``scipy.stats.wilcoxon`` with ``zero_method="wilcox"`` (zero differences
    dropped), exact p-values for small samples and the normal approximation
    otherwise (scipy's ``method="auto"``). A pair whose differences are all
    zero gets p = 1.
    """
    import pandas as pd
    from scipy.stats import wilcoxon

    check_option("correction", correction, ("holm", "bonferroni", "none"))
    scores = _check_scores(scores)
    present = list(scores["condition"].unique())
    if conditions is None:
        conditions = [c for c in ("zc", "z", "c") if c in present] + [
            c for c in present if c not in ("zc", "z", "c")
        ]
    else:
        conditions = list(conditions)
        missing = [c for c in conditions if c not in present]
        if missing:
            raise ValueError(f"conditions {missing} are not in scores; present: {present}.")
    if len(conditions) < 2:
        raise ValueError(f"need at least 2 conditions to compare; got {conditions}.")
    metrics = list(scores["metric"].unique()) if metrics is None else list(metrics)
    parts = [scores]
    pooled = _pooled(scores)
    if pooled is not None:
        parts.append(pooled)
    rows = []
    for part in parts:
        for subject in part["subject"].unique():
            for metric in metrics:
                sel = part[(part["subject"] == subject) & (part["metric"] == metric)]
                wide = sel.pivot_table(
                    index="nsd_id", columns="condition", values="score", aggfunc="mean"
                )
                for a, b in itertools.combinations(conditions, 2):
                    if a not in wide or b not in wide:
                        continue
                    pair = wide[[a, b]].dropna()
                    x, y = pair[a].to_numpy(), pair[b].to_numpy()
                    stat, p = float("nan"), float("nan")
                    if len(x) and np.all(x == y):
                        p = 1.0
                    elif len(x):
                        res = wilcoxon(x, y, alternative="two-sided", zero_method="wilcox")
                        stat, p = float(res.statistic), float(res.pvalue)
                    rows.append(
                        dict(
                            subject=subject,
                            metric=metric,
                            condition_a=a,
                            condition_b=b,
                            n_images=len(x),
                            mean_a=float(x.mean()) if len(x) else float("nan"),
                            mean_b=float(y.mean()) if len(y) else float("nan"),
                            mean_difference=float((x - y).mean()) if len(x) else float("nan"),
                            statistic=stat,
                            p_value=p,
                        )
                    )
    table = pd.DataFrame(
        rows,
        columns=[
            "subject",
            "metric",
            "condition_a",
            "condition_b",
            "n_images",
            "mean_a",
            "mean_b",
            "mean_difference",
            "statistic",
            "p_value",
        ],
    )
    table["p_adjusted"] = adjust_pvalues(table["p_value"].to_numpy(), correction)
    table["correction"] = correction
    return table


def seed_spread(summaries):
    """How much the pooled scores move between runs that differ only in their random seed.

    Parameters
    ----------
    summaries : mapping of int to pandas.DataFrame
        Seed → a :func:`summarize` table (``subject, condition, metric, mean``)
        of one run with that seed.

    Returns
    -------
    spread : pandas.DataFrame
        One row per (condition, metric) of the pooled rows (or of the only
        subject's): ``mean_seed{s}`` per seed, then ``mean``, ``sd`` (ddof 1)
        and ``range`` (max − min) across seeds.
    """
    import pandas as pd

    if len(summaries) < 2:
        raise ValueError(f"seed_spread needs runs of at least two seeds, got {list(summaries)}.")
    columns = {}
    for seed, table in summaries.items():
        labels = set(table["subject"].astype(str))
        label = "pooled" if "pooled" in labels else sorted(labels)[0]
        rows = table[table["subject"].astype(str) == label]
        columns[f"mean_seed{seed}"] = rows.set_index(["condition", "metric"])["mean"]
    wide = pd.DataFrame(columns)
    values = wide.to_numpy(dtype=float)
    wide["mean"] = values.mean(axis=1)
    wide["sd"] = values.std(axis=1, ddof=1)
    wide["range"] = values.max(axis=1) - values.min(axis=1)
    return wide.reset_index()
