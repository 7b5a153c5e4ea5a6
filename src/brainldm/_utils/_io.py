"""Writing files so that a crash never leaves a half-written result; fingerprints of files."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
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


def files_fingerprint(paths: Sequence[Path], root: Path | None = None) -> str:
    """Short hash of files' names, sizes and first/last MiB (fast for multi-GB weights).

    Parameters
    ----------
    paths : sequence of Path
    root : Path, optional
        Names are taken relative to it (default: the file names alone).

    Returns
    -------
    fingerprint : str
        16 hex digits.
    """
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(paths):
        size = path.stat().st_size
        name = path.name if root is None else path.relative_to(root).as_posix()
        digest.update(f"{name}:{size}".encode())
        with open(path, "rb") as f:
            digest.update(f.read(2**20))
            if size > 2**21:
                f.seek(-(2**20), os.SEEK_END)
                digest.update(f.read(2**20))
    return digest.hexdigest()[:16]


#: Files under a weights folder that no loader reads, left out of its fingerprint so
#: that fetching other weights later does not make finished stages stale: download
#: bookkeeping (``.part``, ``.part.json``, ``hashes.json`` of ``brainldm fetch``) and
#: dot-files and dot-folders (``.tmp-*``, huggingface_hub's ``.cache/``).
_NOT_CONTENT_SUFFIXES = (".part", ".part.json")
_NOT_CONTENT_NAMES = ("hashes.json",)


def path_fingerprint(path: str | os.PathLike) -> str | None:
    """:func:`files_fingerprint` of a file, or of the content files under a folder; None if absent.

    Under a folder, dot-files, dot-folders and download bookkeeping are left out.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return files_fingerprint([path])
    if not path.is_dir():
        return None
    files = [
        p for p in path.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and not p.name.endswith(_NOT_CONTENT_SUFFIXES)
        and p.name not in _NOT_CONTENT_NAMES
    ]  # fmt: skip
    return files_fingerprint(files, root=path)
