"""The run folder as the rating app sees it: reconstructions, their index, the originals.

A reconstruction run folder ``run_dir`` (written by
:func:`brainldm.reconstruction.reconstruct`) holds ``index.csv`` with columns
``nsd_id, condition, sample, seed, path`` (``path`` relative to ``run_dir``).
For human rating it must also hold the original stimuli, one PNG per test image,
as ``originals/{nsd_id:06d}.png`` (see :func:`brainldm.reconstruction.write_originals`).
The format of that folder belongs to :mod:`brainldm.reconstruction`; this module
only reads it. The app serves these files and no others.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from brainldm.reconstruction import (
    CONDITIONS,
    INDEX_COLUMNS,
    INDEX_FILE,
    ORIGINALS_DIR,
    RATING_DIR,
    original_path,
)

#: File name of the ratings database inside ``RATING_DIR``.
DB_NAME = "ratings.sqlite"

# The names original_path gives: {nsd_id:06d}.png.
_ORIGINAL_NAME = re.compile(r"(\d{6})\.png")


def default_db_path(run_dir: str | os.PathLike) -> Path:
    """Return the ratings database of a run folder: ``run_dir/rating/ratings.sqlite``."""
    return Path(run_dir) / RATING_DIR / DB_NAME


@dataclass(frozen=True)
class RatingRun:
    """The reconstructions of a run that can be rated, and their originals.

    Attributes
    ----------
    run_dir : Path
        The run folder, resolved.
    index : DataFrame
        The rows of ``index.csv`` whose image has an original, with an extra
        column ``file`` (the resolved absolute path of the reconstruction).
    original_ids : tuple of int
        Sorted 0-based ids that have ``originals/{nsd_id:06d}.png``; the pool the
        true image and its foil are drawn from.
    n_without_original : int
        Rows of ``index.csv`` left out because their image has no original.
    """

    run_dir: Path
    index: pd.DataFrame = field(repr=False)
    original_ids: tuple[int, ...]
    n_without_original: int = 0

    @property
    def conditions(self) -> tuple[str, ...]:
        """The conditions present, in the order of ``CONDITIONS``."""
        present = set(self.index["condition"])
        return tuple(c for c in CONDITIONS if c in present)

    def reconstruction_file(self, nsd_id: int, condition: str, sample: int) -> Path:
        """Return the resolved path of one reconstruction; KeyError if the run has none."""
        rows = self.index[
            (self.index["nsd_id"] == nsd_id)
            & (self.index["condition"] == condition)
            & (self.index["sample"] == sample)
        ]
        if rows.empty:
            raise KeyError(f"no reconstruction for nsd_id={nsd_id}, {condition=}, {sample=}")
        return Path(rows["file"].iloc[0])

    def read_image(self, path: str | os.PathLike) -> bytes:
        """Return the bytes of an image of this run, checking the file again now.

        The index was checked when the run was loaded; this repeats the check at
        every read, so a file replaced since by a symbolic link (to anywhere) or
        by something other than a regular file is refused.

        Raises
        ------
        ValueError
            If ``path`` is, or passes through, a symbolic link, or leaves the run folder.
        OSError
            If it is not a readable regular file.
        """
        path = Path(path)
        if not path.is_absolute() or not _inside(path, self.run_dir):
            raise ValueError(f"{path} is not inside the run folder {self.run_dir}.")
        if path.resolve() != path:
            raise ValueError(f"{path} is or passes through a symbolic link; refused.")
        # O_NOFOLLOW closes the gap between the check above and the open.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise OSError(f"{path} is not a regular file.")
            return f.read()

    def original_file(self, nsd_id: int) -> Path:
        """Return the path of the original of ``nsd_id``; KeyError if the run has none."""
        if int(nsd_id) not in self.original_ids:
            raise KeyError(f"no original for nsd_id={nsd_id}")
        return original_path(self.run_dir, nsd_id)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def load_run(run_dir: str | os.PathLike) -> RatingRun:
    """Read a run folder for rating, refusing any image path that leaves the folder.

    Parameters
    ----------
    run_dir : path-like
        Holds ``index.csv`` (columns ``nsd_id, condition, sample, seed, path``)
        and ``originals/{nsd_id:06d}.png``.

    Returns
    -------
    run : RatingRun

    Raises
    ------
    FileNotFoundError
        If ``index.csv``, a listed reconstruction or ``originals/`` is missing.
    ValueError
        If ``index.csv`` lacks a column, holds an unknown condition, or a ``path``
        that resolves outside ``run_dir`` (absolute, ``..`` or a symbolic link out),
        or if fewer than two images have an original.
    """
    root = Path(run_dir).resolve()
    index_path = root / INDEX_FILE
    if not index_path.is_file():
        raise FileNotFoundError(
            f"run_dir={str(run_dir)!r} has no index.csv; write it with "
            "brainldm.reconstruction.reconstruct (brainldm reconstruct)."
        )
    index = pd.read_csv(index_path, dtype={"condition": str, "path": str})
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"{index_path} lacks the column(s) {missing}; expected {INDEX_COLUMNS}.")
    unknown = sorted(set(index["condition"]) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"{index_path} has unknown condition(s) {unknown}; allowed: {CONDITIONS}.")
    index = index.astype({"nsd_id": int, "sample": int, "seed": int})

    files = []
    for row in index.itertuples():
        rel = Path(row.path)
        file = (root / rel).resolve()
        if rel.is_absolute() or not _inside(file, root):
            raise ValueError(
                f"{index_path}: path={row.path!r} (nsd_id={row.nsd_id}) leaves the run folder; "
                "every path must be relative and stay inside it."
            )
        if not file.is_file():
            raise FileNotFoundError(f"{index_path} lists {row.path!r}, which does not exist.")
        files.append(str(file))
    index = index.assign(file=files)

    originals_dir = root / ORIGINALS_DIR
    if not originals_dir.is_dir():
        raise FileNotFoundError(
            f"run_dir={str(run_dir)!r} has no {ORIGINALS_DIR}/ folder; write the original "
            "stimuli with brainldm.reconstruction.write_originals."
        )
    original_ids = []
    for path in originals_dir.iterdir():
        match = _ORIGINAL_NAME.fullmatch(path.name)
        if match and path.is_file() and _inside(path.resolve(), root):
            original_ids.append(int(match.group(1)))
    original_ids = tuple(sorted(original_ids))
    if len(original_ids) < 2:
        raise ValueError(
            f"{originals_dir} holds {len(original_ids)} original(s); a two-alternative "
            "trial needs at least 2 (the true image and a foil)."
        )
    has_original = index["nsd_id"].isin(original_ids)
    kept = index[has_original].reset_index(drop=True)
    if kept.empty:
        raise ValueError(f"no reconstruction in {index_path} has an original in {originals_dir}.")
    return RatingRun(root, kept, original_ids, int((~has_original).sum()))
