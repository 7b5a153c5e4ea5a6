"""Decoding accuracy against data quality: one point per subject (the paper's check)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def plot_data_quality(
    subjects: Sequence[str],
    median_ncsnr: Mapping[str, Sequence[float | None]],
    decoding_r: Mapping[str, Sequence[float]],
    titles: Mapping[str, str] | None = None,
):
    """Scatter of each subject's decoding accuracy against its median ncsnr, per target.

    Parameters
    ----------
    subjects : sequence of str
        Point labels (``"subj01"``, ...).
    median_ncsnr : mapping of str to sequence of float or None, each of length n_subjects
        Target (``"image_latents"``, ``"text_embeddings"``) → median noise-ceiling
        SNR of its ROI per subject; None (not recorded) is left out.
    decoding_r : mapping of str to sequence of float, each of length n_subjects
        Target → mean per-image decoding r per subject.
    titles : mapping of str to str, optional
        Panel title per target (default: the target).

    Returns
    -------
    figure : matplotlib.figure.Figure
        One panel per target of ``decoding_r``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    targets = list(decoding_r)
    fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 3), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        points = [(x, y, s) for x, y, s in zip(median_ncsnr[target], decoding_r[target], subjects,
                                               strict=True) if x is not None]  # fmt: skip
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], color="#6a8fc7")
            for xi, yi, label in points:
                ax.annotate(label, (xi, yi), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
            ax.margins(0.2)
        ax.set_xlabel("median ncsnr of the ROI")
        ax.set_ylabel("decoding r (mean per image)")
        ax.set_title((titles or {}).get(target, target), fontsize=9)
    fig.tight_layout()
    return fig
