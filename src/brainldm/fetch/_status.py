"""``fetch_status``: which expected files are present, missing or corrupt; offline."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from brainldm.fetch._common import ETagHasher, file_sha256, format_size, part_path, read_chunks
from brainldm.nsd import DEFAULT_BETA_TYPE


@dataclass(frozen=True)
class FileStatus:
    """State of one expected file.

    Attributes
    ----------
    group : str
        ``nsd:<what item>`` or ``weights:<name>``.
    path : Path
    state : {"present", "missing", "partial", "corrupt"}
        ``partial``: only a ``.part`` of an interrupted download is there.
    detail : str
        Size, and how it was checked.
    """

    group: str
    path: Path
    state: str
    detail: str

    @property
    def ok(self) -> bool:
        """True when the file is present and passed its checks."""
        return self.state == "present"


def _state(path: Path, size: int | None) -> tuple[str, str] | None:
    if not path.is_file():
        part = part_path(path)
        if part.is_file():
            return "partial", f"{format_size(part.stat().st_size)} of a .part file"
        return "missing", ""
    have = path.stat().st_size
    if size is not None and have != size:
        return "corrupt", f"{have} bytes, expected {size}"
    return None


def _nsd_rows(root, subjects, sessions, what, space, fmt, beta_type, hashes) -> list[FileStatus]:
    from brainldm.fetch._nsd import _read_manifest
    from brainldm.fetch._nsd_files import nsd_files

    root = Path(root).expanduser()
    manifest = _read_manifest(root)
    rows = []
    for f in nsd_files(root, subjects, sessions=sessions, what=what, space=space, fmt=fmt,
                       beta_type=beta_type):  # fmt: skip
        record = manifest.get(f.key) if f.what != "captions" else None
        size = record["size"] if record else None
        bad = _state(f.path, size)
        if bad is None:
            detail = format_size(f.path.stat().st_size)
            if record is None:
                detail += ", not fetched by brainldm (unchecked)"
            elif hashes and ("-" not in record["etag"] or record.get("part_size")):
                hasher = ETagHasher(record.get("part_size") if "-" in record["etag"] else None)
                for data in read_chunks(f.path):
                    hasher.update(data)
                if hasher.hexdigest() != record["etag"]:
                    bad = ("corrupt", f"MD5 {hasher.hexdigest()}, expected ETag {record['etag']}")
                detail += ", size and MD5 checked" + (
                    " (multipart ETag)" if "-" in record["etag"] else "")  # fmt: skip
            else:
                detail += ", size checked" + (
                    " (multipart ETag, part size unknown)" if hashes else "")  # fmt: skip
        state, detail = bad if bad else ("present", detail)
        rows.append(FileStatus(f"nsd:{f.what}", f.path, state, detail))
    return rows


def _weight_rows(folder, only, hashes) -> list[FileStatus]:
    from brainldm.fetch._weights import read_hashes, weight_files

    folder = Path(folder).expanduser()
    recorded = read_hashes(folder)
    rows = []
    for f in weight_files(only):
        path = folder / f.path
        record = recorded.get(f.path)
        bad = _state(path, record["size"] if record else None)
        if bad is None:
            detail = format_size(path.stat().st_size)
            if hashes:
                sha256 = file_sha256(path)
                if record and sha256 != record["sha256"]:
                    bad = ("corrupt", f"SHA-256 {sha256[:16]}…, recorded {record['sha256'][:16]}…")
                elif f.sha256 and sha256 != f.sha256:
                    bad = ("corrupt", f"SHA-256 {sha256[:16]}…, pinned {f.sha256[:16]}…")
                elif f.sha256_prefix and not sha256.startswith(f.sha256_prefix):
                    bad = ("corrupt", f"SHA-256 {sha256[:16]}…, name says {f.sha256_prefix}")
                detail += ", SHA-256 checked" if record or f.sha256_prefix else ", no hash known"
            elif record is None:
                detail += ", not fetched by brainldm (unchecked)"
            else:
                detail += ", size checked"
        state, detail = bad if bad else ("present", detail)
        rows.append(FileStatus(f"weights:{f.name}", path, state, detail))
    return rows


def fetch_status(
    root: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    *,
    subjects: Iterable[int] = (1, 2, 5, 7),
    sessions: Sequence[int] | None = None,
    what: Iterable[str] | None = None,
    space: str = "func1pt8mm",
    fmt: str | None = None,
    beta_type: str = DEFAULT_BETA_TYPE,
    only: Iterable[str] | None = None,
    hashes: bool = False,
) -> list[FileStatus]:
    """State of every file :func:`fetch_nsd` / :func:`fetch_weights` would fetch; no network.

    Sizes are checked against what was recorded at download (the NSD root's
    ``.brainldm-fetch.json``, the weights folder's ``hashes.json``); with
    ``hashes=True`` contents too (MD5 against single-part ETags, SHA-256 against
    the recorded hash or the one in a torchvision file's name).

    Parameters
    ----------
    root : path-like, optional
        NSD root to check (skipped when None).
    weights : path-like, optional
        Weights folder to check (skipped when None).
    subjects, sessions, what, space, fmt, beta_type
        Which NSD files: see :func:`nsd_files`.
    only : iterable of str, optional
        Which weights: see :func:`weight_files`.
    hashes : bool
        Also read every file and check its hash (slow on the full NSD).

    Returns
    -------
    rows : list of FileStatus
    """
    if root is None and weights is None:
        raise ValueError("give an NSD root (root, --root), a weights folder (weights, "
                         "--weights) or both.")
    rows: list[FileStatus] = []
    if root is not None:
        rows += _nsd_rows(root, subjects, sessions, what, space, fmt, beta_type, hashes)
    if weights is not None:
        rows += _weight_rows(weights, only, hashes)
    return rows


def status_table(rows: list[FileStatus]) -> str:
    """The rows as an aligned text table, then counts per state."""
    width = max((len(r.group) for r in rows), default=5)
    lines = [f"{'state':<8}  {'group':<{width}}  path  (detail)"]
    for r in rows:
        detail = f"  ({r.detail})" if r.detail else ""
        lines.append(f"{r.state:<8}  {r.group:<{width}}  {r.path}{detail}")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    lines.append(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return "\n".join(lines)
