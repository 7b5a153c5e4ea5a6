"""Figures 3 and 4: original and reconstructed images side by side.

Both read a reconstruction folder as :func:`brainldm.reconstruction.reconstruct`
writes it (``index.csv``, ``originals/``, one PNG per condition, image and
sample). The paper shows, of five samples, the one with the highest perceptual
similarity to the original (L423-424), a selection that uses the original;
these figures show one fixed sample (``sample``, default the first), so what
they show is what a reader would get without seeing the stimulus.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

#: The columns of Figure 3: the original, then the three conditions of the paper.
FIGURE3_CONDITIONS = ("z", "c", "zc")
_CONDITION_TITLES = {"z": "z only", "c": "c only", "zc": "z + c", "original": "original"}


def _index(folder: Path):
    import pandas as pd

    from brainldm.reconstruction import INDEX_FILE

    path = folder / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: is {folder} a finished reconstruction folder?")
    return pd.read_csv(path)


def _cell(folder: Path, index, nsd_id: int, condition: str, sample: int):
    """(path relative to folder, image) of one cell; path None when that sample is missing."""
    from PIL import Image

    if condition == "original":
        from brainldm.reconstruction import original_path

        path = original_path(folder, nsd_id)
    else:
        rows = index[(index.nsd_id == nsd_id) & (index.condition == condition)]
        rows = rows[rows["sample"] == sample] if (rows["sample"] == sample).any() else rows[:1]
        if rows.empty:
            return None, None
        path = folder / rows["path"].iloc[0]
    if not Path(path).is_file():
        return None, None
    with Image.open(path) as image:
        return Path(path).relative_to(folder).as_posix(), np.asarray(image.convert("RGB"))


def _grid(cells, row_labels: Sequence[str], column_labels: Sequence[str], title: str):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(cells), len(column_labels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols + 0.4, 1.6 * n_rows + 0.5),
                             squeeze=False)  # fmt: skip
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if image is None:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=7)
            else:
                ax.imshow(image)
            if c == 0:  # the original: framed red, as the paper
                for spine in ax.spines.values():
                    spine.set_edgecolor("red")
                    spine.set_linewidth(2)
                ax.set_ylabel(row_labels[r], fontsize=7)
            if r == 0:
                ax.set_title(column_labels[c], fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def figure_3(
    folder: str | os.PathLike,
    nsd_ids: Sequence[int] | None = None,
    n_images: int = 6,
    sample: int = 0,
    conditions: Sequence[str] = FIGURE3_CONDITIONS,
    subject_label: str = "",
):
    """Figure 3: for one subject, each test image (red frame) and its z, c and z + c reconstructions.

    Parameters
    ----------
    folder : path-like
        The subject's reconstruction folder.
    nsd_ids : sequence of int, optional
        Images (rows). Default: the first ``n_images`` of the folder's index.
    n_images : int
    sample : int
        Which of each image's samples to show (the first sample when a
        condition has one image per test image, as the deterministic z only).
    conditions : sequence of str
        Columns after the original.
    subject_label : str
        For the title, e.g. ``"subj01"``.

    Returns
    -------
    figure : matplotlib.figure.Figure
    table : pandas.DataFrame
        ``nsd_id, column, path`` of each cell (path relative to ``folder``,
        empty where missing).
    """
    import pandas as pd

    folder = Path(folder)
    index = _index(folder)
    if nsd_ids is None:
        nsd_ids = list(dict.fromkeys(int(i) for i in index["nsd_id"]))[:n_images]
    if not len(nsd_ids):
        raise ValueError(f"no images to show: {folder / 'index.csv'} lists none.")
    columns = ["original", *conditions]
    cells, rows = [], []
    for nsd_id in nsd_ids:
        row = []
        for column in columns:
            path, image = _cell(folder, index, int(nsd_id), column, sample)
            row.append(image)
            rows.append({"nsd_id": int(nsd_id), "column": column, "path": path or ""})
        cells.append(row)
    title = f"Figure 3. Presented (red) and reconstructed images{', ' + subject_label if subject_label else ''}"
    fig = _grid(cells, [f"nsd {i}" for i in nsd_ids],
                [_CONDITION_TITLES.get(c, c) for c in columns], title)  # fmt: skip
    return fig, pd.DataFrame(rows, columns=["nsd_id", "column", "path"])


def figure_4(
    folders: Mapping[str, str | os.PathLike],
    nsd_ids: Sequence[int] | None = None,
    n_images: int = 3,
    sample: int = 0,
    condition: str = "zc",
):
    """Figure 4: the same test images reconstructed (z + c) from every subject.

    Parameters
    ----------
    folders : mapping of str to path-like
        Subject label (``"subj01"``) → its reconstruction folder.
    nsd_ids : sequence of int, optional
        Images (rows). Default: the first ``n_images`` that every subject has.
    n_images : int
    sample : int
    condition : str

    Returns
    -------
    figure : matplotlib.figure.Figure
    table : pandas.DataFrame
        ``nsd_id, column, path`` (column: "original" or the subject label; path
        relative to the subject's folder).
    """
    import pandas as pd

    if not folders:
        raise ValueError("figure_4 needs at least one subject's reconstruction folder.")
    folders = {label: Path(f) for label, f in folders.items()}
    indexes = {label: _index(f) for label, f in folders.items()}
    if nsd_ids is None:
        common = None
        for index in indexes.values():
            ids = list(dict.fromkeys(int(i) for i in index["nsd_id"]))
            common = ids if common is None else [i for i in common if i in set(ids)]
        nsd_ids = common[:n_images]
    if not len(nsd_ids):
        raise ValueError(f"the subjects {list(folders)} have no test image in common.")
    first = next(iter(folders))
    cells, rows = [], []
    for nsd_id in nsd_ids:
        path, original = _cell(folders[first], indexes[first], int(nsd_id), "original", sample)
        row = [original]
        rows.append({"nsd_id": int(nsd_id), "column": "original", "path": path or ""})
        for label, folder in folders.items():
            path, image = _cell(folder, indexes[label], int(nsd_id), condition, sample)
            row.append(image)
            rows.append({"nsd_id": int(nsd_id), "column": label, "path": path or ""})
        cells.append(row)
    fig = _grid(cells, [f"nsd {i}" for i in nsd_ids], ["original", *folders],
                f"Figure 4. {_CONDITION_TITLES.get(condition, condition)} reconstructions "
                "of the same images from every subject")  # fmt: skip
    return fig, pd.DataFrame(rows, columns=["nsd_id", "column", "path"])
