"""Writing files so that a crash never leaves a half-written result."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` keeps what it
    held before (if anything).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
    >>> with atomic_path(out) as tmp:
    ...     np.save(tmp, np.arange(3))
    >>> np.load(out).tolist()
    [0, 1, 2]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep every suffix (".nii.gz"): writers pick the format from it. The random part
    # keeps workers on different hosts sharing a folder from colliding.
    tmp = path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` through a temporary file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def remove_temporaries(folders, recursive: bool = False) -> int:
    """Delete the ``.tmp-*`` files of :func:`atomic_path` that a killed process left behind.

    Call it only where no other process is writing (at the start of a stage that
    owns the folders, or after every worker has finished).

    Parameters
    ----------
    folders : iterable of path-like
        Folders to clean; missing ones are skipped.
    recursive : bool
        Also clean their sub-folders.

    Returns
    -------
    n_removed : int
    """
    n = 0
    for folder in folders:
        folder = Path(folder)
        for path in folder.rglob(".tmp-*") if recursive else folder.glob(".tmp-*"):
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)
                n += 1
    return n
