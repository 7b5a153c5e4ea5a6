"""``fetch_nsd``: the NSD files brainldm reads, from NSD's public bucket, plus COCO captions."""

from __future__ import annotations

import json
import logging
import os
import threading
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from brainldm.fetch._common import (
    ByteProgress,
    FetchError,
    Transfer,
    differs_message,
    format_size,
    part_path,
    run_parallel,
)
from brainldm.fetch._nsd_files import (
    COCO_ANNOTATIONS_URL,
    DATA_ACCESS_REMINDER,
    NSD_BUCKET,
    NSD_REGION,
    NSDFile,
    nsd_download_of,
    nsd_files,
)
from brainldm.nsd import DEFAULT_BETA_TYPE

logger = logging.getLogger(__name__)

#: ``what`` items whose files, when the bucket lacks them, are skipped with a warning
#: instead of stopping the fetch (NSD's ncsnr file name is not verified).
OPTIONAL_WHAT = ("ncsnr",)

#: Record of what was downloaded and verified, in the NSD root (read by ``fetch_status``).
NSD_MANIFEST = ".brainldm-fetch.json"


@dataclass
class FetchPlan:
    """Files to fetch with their sizes, before anything is written.

    Attributes
    ----------
    files : list of NSDFile
    sizes : dict of {Path: int}
        Remote size of each file; for COCO captions, once: the archive's size (or the
        captions' own when both are on disk already).
    etags : dict of {Path: str}
        S3 ETag of each NSD file.
    present : set of Path
        Files already complete on disk (same size as the remote one).
    differs : set of Path
        Files already at their place with another size than the remote one: never
        replaced unless ``force=True`` (``--force``).
    skipped : list of NSDFile
        Files of :data:`OPTIONAL_WHAT` items the bucket lacks (warned about, not fetched).
    """

    files: list[NSDFile]
    sizes: dict[Path, int] = field(default_factory=dict)
    etags: dict[Path, str] = field(default_factory=dict)
    present: set[Path] = field(default_factory=set)
    differs: set[Path] = field(default_factory=set)
    skipped: list[NSDFile] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Bytes of every listed file."""
        return sum(self.sizes.values())

    def table(self) -> str:
        """One line per file (size, state, path), then the total."""
        lines = []
        for f in self.files:
            if f.path not in self.sizes:
                continue  # the second COCO caption file: counted with the archive
            state = ("present" if f.path in self.present else
                     "differs" if f.path in self.differs else "to fetch")  # fmt: skip
            label = f.path if f.what != "captions" else f"{f.path.parent}/ (COCO archive)"
            lines.append(f"{format_size(self.sizes[f.path]):>10}  {state:<8}  {label}")
        n_downloads = len(lines)
        lines += [f"{'':>10}  {'skipped':<8}  {f.path} (not in the bucket)"
                  for f in self.skipped]  # fmt: skip
        todo = sum(s for p, s in self.sizes.items() if p not in self.present)
        lines.append(f"total {format_size(self.total)} in {n_downloads} downloads; "
                     f"{format_size(todo)} still to fetch")  # fmt: skip
        return "\n".join(lines)


def _read_manifest(root: Path) -> dict:
    path = root / NSD_MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def plan_nsd(
    root: Path,
    files: list[NSDFile],
    *,
    client=None,
    bucket: str = NSD_BUCKET,
    coco_url: str = COCO_ANNOTATIONS_URL,
) -> FetchPlan:
    """List every file's remote size (and ETag), and which are already on disk.

    Raises
    ------
    FetchError
        If the bucket lacks some keys; the message names each file and its ``--what`` item.
    """
    from brainldm.fetch._http import remote_size
    from brainldm.fetch._s3 import list_objects

    plan = FetchPlan(files)
    s3_files = [f for f in files if f.what != "captions"]
    if s3_files:
        listed = list_objects(client, bucket, (f.key for f in s3_files))
        missing = [f for f in s3_files if f.key not in listed]
        # NSD's noise-ceiling file name is not documented as surely as the others:
        # missing, it is skipped with a warning rather than stopping everything.
        optional = [f for f in missing if f.what in OPTIONAL_WHAT]
        if optional:
            for f in optional:
                logger.warning("skipped %s: not in s3://%s (%s)", f.key, bucket,
                               nsd_download_of(f, root))  # fmt: skip
            plan.files = [f for f in plan.files if f not in optional]
            plan.skipped = optional
            s3_files = [f for f in s3_files if f not in optional]
            missing = [f for f in missing if f not in optional]
        if missing:
            lines = "\n".join(f"  {f.key} ({nsd_download_of(f, root)})" for f in missing[:20])
            more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
            raise FetchError(
                f"{len(missing)} file(s) are not in s3://{bucket}:\n{lines}{more}\n"
                "Check --subjects/--sessions/--what, or the bucket's layout."
            )
        for f in s3_files:
            obj = listed[f.key]
            plan.sizes[f.path], plan.etags[f.path] = obj.size, obj.etag
            if f.path.is_file() and f.path.stat().st_size == obj.size:
                plan.present.add(f.path)
            elif f.path.exists():
                plan.differs.add(f.path)
    captions = [f for f in files if f.what == "captions"]
    if captions:
        if all(f.path.is_file() for f in captions):
            plan.sizes[captions[0].path] = sum(f.path.stat().st_size for f in captions)
            plan.present.add(captions[0].path)
        else:
            plan.sizes[captions[0].path] = remote_size(coco_url)
    return plan


#: Prefix of the COCO archive this command downloads (and removes once extracted); a
#: user's own ``annotations_trainval2017.zip`` beside the captions is used and kept.
COCO_DOWNLOAD_PREFIX = ".brainldm-download-"


def _extract_captions(archive: Path, captions: list[NSDFile]) -> None:
    """Check COCO's archive, then extract only the caption files from it, each atomically.

    Raises
    ------
    FetchError
        If the archive is not a readable zip, fails its CRC check, or lacks a caption file.
    """
    from brainldm._utils import atomic_path

    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            for f in captions:
                if f.key not in names:
                    raise FetchError(f"{archive} has no {f.key}; "
                                     "is it COCO's annotations_trainval2017.zip?")
            bad = zf.testzip()
            if bad is not None:
                raise FetchError(f"{archive} is corrupt: {bad} fails its CRC check.")
            for f in captions:
                with zf.open(f.key) as src, atomic_path(f.path) as tmp, open(tmp, "wb") as dst:
                    while data := src.read(1 << 20):
                        dst.write(data)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as err:
        raise FetchError(f"{archive} is not a readable zip archive ({err}).") from err


def fetch_nsd(
    root: str | os.PathLike,
    subjects: Iterable[int],
    *,
    sessions: Sequence[int] | None = None,
    what: Iterable[str] | None = None,
    space: str = "func1pt8mm",
    fmt: str | None = None,
    beta_type: str = DEFAULT_BETA_TYPE,
    dry_run: bool = False,
    endpoint_url: str | None = None,
    bucket: str = NSD_BUCKET,
    coco_url: str = COCO_ANNOTATIONS_URL,
    workers: int = 8,
    limit_rate: float | None = None,
    progress: bool = True,
    force: bool = False,
    echo: Callable[[str], None] | None = None,
) -> dict:
    """Download the NSD files brainldm reads into ``root``, mirroring the bucket's layout.

    Every file is listed first (size, ETag), then downloaded in parallel through a
    ``.part`` file that a later call resumes (``Range``), checked against the listed
    size and ETag, and renamed into place. Files already complete are skipped, so
    a second call downloads nothing. COCO captions come from COCO's annotation
    archive over HTTPS; only the two caption files are extracted from it.

    Parameters
    ----------
    root : path-like
        The local NSD root (created if needed).
    subjects : iterable of int
        NSD subjects, e.g. ``(1, 2, 5, 7)``.
    sessions, what, space, fmt, beta_type
        Which files: see :func:`nsd_files`.
    dry_run : bool
        List the files with their sizes and the total, write nothing.
    endpoint_url : str, optional
        S3 endpoint; default boto3's (``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, else AWS).
    bucket : str
        Default NSD's ``natural-scenes-dataset``.
    coco_url : str
        URL of COCO's ``annotations_trainval2017.zip``.
    workers : int
        Parallel transfers.
    limit_rate : float, optional
        Maximum bytes per second of each transfer.
    progress : bool
        Show a progress bar over bytes.
    force : bool
        Replace files already at their place whose size differs from the listed one
        (``--force``). Without it such files are refused before any download.
    echo : callable, optional
        Where the file list and the data-access reminder go (the CLI passes
        ``print``); default this module's logger.

    Returns
    -------
    summary : dict
        ``plan`` (:class:`FetchPlan`) and ``transfers`` (list of :class:`Transfer`).

    Raises
    ------
    ValueError
        Bad subjects, sessions, ``what`` items, space or format (nothing is listed).
    FetchError
        Missing keys or files that differ without ``force`` (before anything is
        written), a failed transfer or a failed check.
    """
    from brainldm._utils import check_positive_int
    from brainldm.fetch._s3 import RemoteObject, download_object, s3_client

    echo = echo or logger.info
    check_positive_int("workers (--workers)", workers)
    root = Path(root).expanduser()
    files = nsd_files(root, subjects, sessions=sessions, what=what, space=space, fmt=fmt,
                      beta_type=beta_type)  # fmt: skip
    echo(DATA_ACCESS_REMINDER)
    client = s3_client(endpoint_url, NSD_REGION, workers) if any(
        f.what != "captions" for f in files) else None  # fmt: skip
    plan = plan_nsd(root, files, client=client, bucket=bucket, coco_url=coco_url)
    echo(plan.table())
    if dry_run:
        return {"plan": plan, "transfers": []}
    if plan.differs and not force:
        raise FetchError(differs_message([(p, p.stat().st_size, plan.sizes[p])
                                           for p in sorted(plan.differs)]))  # fmt: skip

    todo = [f for f in files if f.path in plan.sizes and f.path not in plan.present]
    captions = [f for f in files if f.what == "captions"]
    coco_name = Path(urlsplit(coco_url).path).name
    users_archive = captions[0].path.parent / coco_name if captions else None
    archive = captions[0].path.parent / f"{COCO_DOWNLOAD_PREFIX}{coco_name}" if captions else None
    parts = [part_path(archive if f.what == "captions" else f.path) for f in todo]
    initial = sum(p.stat().st_size for p in parts if p.is_file())
    bar = ByteProgress(sum(plan.sizes[f.path] for f in todo), initial, progress, "NSD")
    manifest = _read_manifest(root)
    cancel = threading.Event()

    fetched: dict[str, dict] = {}  # manifest entries of the files this call downloaded

    def s3_job(f: NSDFile) -> Callable[[], Transfer]:
        obj = RemoteObject(f.key, plan.sizes[f.path], plan.etags[f.path])

        def run() -> Transfer:
            transfer = download_object(client, bucket, obj, f.path, progress=bar,
                                       limit_rate=limit_rate,
                                       describe=f" ({nsd_download_of(f, root)})",
                                       cancel=cancel)  # fmt: skip
            fetched[f.key] = {"size": obj.size, "etag": obj.etag,
                              **({"part_size": transfer.part_size} if transfer.part_size
                                 else {})}  # fmt: skip
            return transfer
        return run

    def coco_job() -> Transfer:
        from brainldm.fetch._http import download_url

        size = plan.sizes[captions[0].path]
        if users_archive.is_file() and users_archive.stat().st_size == size:
            _extract_captions(users_archive, captions)  # the user's own copy: used and kept
            return Transfer(captions[0].path.parent, size, 0, 0, "zip CRC (archive on disk)")
        if archive.is_file() and archive.stat().st_size == size:  # ours, from a stopped run
            transfer = Transfer(archive, size, 0, size, "")
        else:
            transfer, _ = download_url(coco_url, archive, size=size, progress=bar,
                                       limit_rate=limit_rate, cancel=cancel)  # fmt: skip
        try:
            _extract_captions(archive, captions)
        except FetchError as err:
            archive.unlink(missing_ok=True)  # downloaded by this command: never reused
            raise FetchError(f"{err} The downloaded archive was removed; run the command "
                             f"again (from {coco_url}).") from None  # fmt: skip
        archive.unlink()  # our own intermediate: only the captions are kept
        return Transfer(captions[0].path.parent, transfer.size, transfer.downloaded,
                        transfer.resumed_from, "zip CRC (COCO publishes no checksum)")

    jobs = [coco_job if f.what == "captions" else s3_job(f) for f in todo]
    try:
        transfers = run_parallel(jobs, workers, cancel)
    finally:
        bar.close()
        # record what this command downloaded and verified, for `brainldm fetch status`
        # (files it did not download stay "unchecked" there)
        manifest.update(fetched)
        if fetched:
            from brainldm._utils import write_json_atomic

            write_json_atomic(root / NSD_MANIFEST, manifest)
    done = sum(t.downloaded for t in transfers)
    echo(f"{len(transfers)} downloads, {format_size(done)} transferred into {root}; "
         f"{len(plan.present)} already present.")  # fmt: skip
    return {"plan": plan, "transfers": transfers}
