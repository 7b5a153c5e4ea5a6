"""Charts of evaluation results."""

from __future__ import annotations

import numpy as np

#: Metrics that are not identification accuracies (no chance line, no [0, 1] axis).
_NOT_IDENTIFICATION = ("pixcorr", "ssim", "effnet", "swav")


def pooled_summary(table, subjects):
    """Return the rows of a summary table to show: pooled over subjects, or the one subject's.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``subject, condition, metric, mean, ci_low, ci_high, ...``.
    subjects : sequence of int

    Returns
    -------
    rows : pandas.DataFrame
    """
    label = "pooled" if len(subjects) > 1 else str(subjects[0])
    return table[table["subject"].astype(str) == label]


def plot_identification(rows, title: str = ""):
    """Bars of the mean score per condition with 95% bootstrap CIs, one panel per metric.

    Parameters
    ----------
    rows : pandas.DataFrame
        Summary rows of one subject or the pooled ones (:func:`pooled_summary`).
    title : str

    Returns
    -------
    figure : matplotlib.figure.Figure
        Identification panels have the chance line (0.5) and a [0, 1] axis.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(rows["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics) + 0.6, 3),
                             squeeze=False)  # fmt: skip
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = rows[rows["metric"] == metric]
        x = np.arange(len(sub))
        err = [sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]]
        ax.bar(x, sub["mean"], yerr=err, capsize=3, color="#6a8fc7")
        ax.set_xticks(x, sub["condition"], rotation=30)
        ax.set_title(metric, fontsize=9)
        if metric not in _NOT_IDENTIFICATION:
            ax.axhline(0.5, color="k", lw=0.8, ls="--")  # chance of two-way identification
            ax.set_ylim(0, 1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
