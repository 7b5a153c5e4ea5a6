"""Figure 5: identification accuracy by metric and condition, mean ± SEM, signed-rank marks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Metrics that are not identification accuracies (no chance line, no [0, 1] axis).
_NOT_IDENTIFICATION = ("pixcorr", "ssim", "effnet", "swav")
_COLOURS = {"z": "#4c72b0", "c": "#dd8452", "zc": "#55a868", "oracle zc": "#9a9a9a"}


def significance_marks(p: float) -> str:
    """``***`` (p < 0.001), ``**`` (< 0.01), ``*`` (< 0.05) or ``n.s.``."""
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def figure_5(
    scores,
    tests=None,
    summary=None,
    conditions: Sequence[str] = ("z", "c", "zc"),
    metrics: Sequence[str] | None = None,
    title: str = "",
):
    """Figure 5: mean ± SEM over test images pooled across subjects, per metric and condition.

    As the paper: each subject's test images are pooled (one score per subject
    and image) and the error bars are the standard error of the mean. The
    signed-rank tests between conditions (two-sided, Holm-corrected, as
    ``brainldm.evaluation`` writes them) are marked above each pair.

    Parameters
    ----------
    scores : pandas.DataFrame
        Per-image scores: ``subject, condition, nsd_id, metric, score``
        (``scores.csv`` of an evaluation).
    tests : pandas.DataFrame, optional
        ``subject, metric, condition_a, condition_b, p_adjusted`` (``tests.csv``);
        the pooled rows (subject ``"pooled"``) are used, or the only subject's.
    summary : pandas.DataFrame, optional
        ``subject, condition, metric, ci_low, ci_high`` (``summary.csv``): its
        bootstrap CIs of the same rows are copied into the table.
    conditions : sequence of str
        Bars, in order (those present in ``scores``).
    metrics : sequence of str, optional
        Panels. Default: every metric of ``scores``.
    title : str

    Returns
    -------
    figure : matplotlib.figure.Figure
    table : pandas.DataFrame
        One row per (metric, condition): ``n_images, mean, sem, ci_low,
        ci_high`` and ``p_holm_vs_{other}`` for each other condition.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd

    present = set(scores["condition"])
    conditions = [c for c in conditions if c in present]
    if not conditions:
        raise ValueError(f"scores hold none of the conditions asked; have {sorted(present)}.")
    metrics = list(dict.fromkeys(scores["metric"])) if metrics is None else list(metrics)
    pooled = _pooled_rows(tests)
    cis = _pooled_rows(summary)
    rows = []
    for metric in metrics:
        for condition in conditions:
            s = scores[(scores.metric == metric) & (scores.condition == condition)]["score"]
            s = s.to_numpy(dtype=float)
            s = s[np.isfinite(s)]
            row = {"metric": metric, "condition": condition, "n_images": len(s),
                   "mean": s.mean() if len(s) else np.nan,
                   "sem": s.std(ddof=1) / np.sqrt(len(s)) if len(s) > 1 else np.nan}  # fmt: skip
            row["ci_low"] = row["ci_high"] = np.nan
            if cis is not None:
                ci = cis[(cis.metric == metric) & (cis.condition == condition)]
                if len(ci):
                    row["ci_low"], row["ci_high"] = ci["ci_low"].iloc[0], ci["ci_high"].iloc[0]
            for other in conditions:
                if other != condition:
                    row[f"p_holm_vs_{other}"] = _p(pooled, metric, condition, other)
            rows.append(row)
    table = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.9 * len(metrics) + 0.8, 3.2),
                             squeeze=False)  # fmt: skip
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = table[table.metric == metric]
        x = np.arange(len(sub))
        ax.bar(x, sub["mean"], yerr=sub["sem"], capsize=3,
               color=[_COLOURS.get(c, "#8172b3") for c in sub["condition"]])  # fmt: skip
        ax.set_xticks(x, sub["condition"], fontsize=7)
        ax.set_title(metric, fontsize=8)
        ax.tick_params(labelsize=7)
        top = float(np.nanmax(sub["mean"] + sub["sem"].fillna(0))) if len(sub) else 1.0
        if metric not in _NOT_IDENTIFICATION:
            ax.axhline(0.5, color="k", lw=0.8, ls="--")  # chance of two-way identification
            ax.set_ylim(0, 1.3)
            top = max(top, 0.5)
        step, level = 0.07 * (ax.get_ylim()[1] or 1.0), top
        for i in range(len(sub)):  # brackets between pairs of conditions, lowest first
            for j in range(i + 1, len(sub)):
                p = sub.iloc[i].get(f"p_holm_vs_{sub.iloc[j]['condition']}", np.nan)
                mark = significance_marks(p)
                if not mark:
                    continue
                level += step
                ax.plot([x[i], x[i], x[j], x[j]], [level - step / 3, level, level, level - step / 3],
                        color="k", lw=0.7)  # fmt: skip
                ax.text((x[i] + x[j]) / 2, level, mark, ha="center", va="bottom", fontsize=6)
        if metric in _NOT_IDENTIFICATION:
            ax.set_ylim(top=max(ax.get_ylim()[1], level + 2 * step))
    fig.suptitle(title or "Figure 5. Identification accuracy (mean ± SEM over images pooled "
                 "across subjects; * Holm-corrected signed-rank p < 0.05)", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig, table


def _pooled_rows(frame):
    """Rows of the pooled subject when present, else of the only subject; None passes through."""
    if frame is None:
        return None
    labels = sorted(set(frame["subject"].astype(str)))
    label = "pooled" if "pooled" in labels else labels[0] if len(labels) == 1 else None
    if label is None:  # several subjects, not pooled: nothing to mark
        return frame.iloc[:0]
    return frame[frame["subject"].astype(str) == label]


def _p(tests, metric: str, a: str, b: str) -> float:
    if tests is None or not len(tests):
        return np.nan
    hit = tests[(tests.metric == metric) & (
        ((tests.condition_a == a) & (tests.condition_b == b))
        | ((tests.condition_a == b) & (tests.condition_b == a)))]  # fmt: skip
    return float(hit["p_adjusted"].iloc[0]) if len(hit) else np.nan
