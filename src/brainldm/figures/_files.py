"""One figure = a PNG, an SVG and the CSV table behind them, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

#: The files of one figure, by suffix.
FIGURE_FORMATS = ("png", "svg", "csv")


def save_figure_files(fig, table, folder: str | os.PathLike, name: str, dpi: int = 110) -> dict:
    """Write ``{name}.png``, ``{name}.svg`` and ``{name}.csv`` to ``folder``, then close ``fig``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    table : pandas.DataFrame
        The values the figure draws.
    folder : path-like
        Created if missing.
    name : str
    dpi : int
        Of the PNG.

    Returns
    -------
    paths : dict of str to Path
        By suffix (:data:`FIGURE_FORMATS`).
    """
    import matplotlib.pyplot as plt

    from brainldm._utils import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {suffix: folder / f"{name}.{suffix}" for suffix in FIGURE_FORMATS}
    try:
        for suffix in ("png", "svg"):
            with atomic_path(paths[suffix]) as tmp:
                fig.savefig(tmp, dpi=dpi, format=suffix)
    finally:
        plt.close(fig)
    with atomic_path(paths["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    return paths
