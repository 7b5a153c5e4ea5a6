"""Which NSD files brainldm reads, as bucket keys: every path comes from :class:`NSDLayout`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from brainldm.nsd import (  # noqa: F401 (NSD_BUCKET, COCO_ANNOTATIONS_ARCHIVE: re-exported)
    ATLAS_LABELS,
    COCO_ANNOTATIONS_ARCHIVE,
    DEFAULT_BETA_TYPE,
    NSD_BUCKET,
    SURFACE_FILES,
    TRANSFORM_DEPTHS,
    NSDLayout,
)

#: Region given to boto3. Not checked against the bucket here: unsigned requests to
#: another region get S3's redirect, which botocore follows.
NSD_REGION = "us-east-1"

#: Sessions per subject (subj01-08), NSD Technical notes (nsd_and_tools.md §1.7).
NSD_SESSIONS: dict[int, int] = {1: 40, 2: 40, 3: 32, 4: 30, 5: 40, 6: 32, 7: 40, 8: 30}

#: The parts of NSD one can ask for (``--what``) and what each holds.
NSD_WHAT: dict[str, str] = {
    "design": "nsd_expdesign.mat, nsd_stim_info_merged.csv and the subject's responses.tsv",
    "stimuli": "nsd_stimuli.hdf5, the 73,000 images",
    "captions": "COCO captions_train2017.json and captions_val2017.json (not part of NSD)",
    "betas": "the single-trial betas, one file per session",
    "rois": "the ROI volumes, their colour tables and fsaverage labels (streams, nsdgeneral)",
    "brainmask": "the subject's brainmask.nii.gz",
    "transforms": "the volume → surface → fsaverage transforms (for the brain maps)",
    "ncsnr": "the noise-ceiling SNR beside the betas",
    "freesurfer": "the subject's own FreeSurfer surfaces (flat maps)",
}

#: Spaces of the betas (``--space``) → the :class:`NSDLayout` format used for them.
NSD_SPACES: dict[str, tuple[str, ...]] = {
    "func1pt8mm": ("hdf5", "nifti"),
    "fsaverage": ("fsaverage",),
}

#: COCO's annotation archive (captions are extracted from it); not part of NSD.
COCO_ANNOTATIONS_URL = f"https://images.cocodataset.org/annotations/{COCO_ANNOTATIONS_ARCHIVE}"

#: COCO splits whose captions NSD images use (``cocoSplit`` of nsd_stim_info_merged.csv).
COCO_SPLITS = ("train2017", "val2017")

#: NSD's terms of use, printed before every download.
DATA_ACCESS_REMINDER = (
    "NSD terms: use the Natural Scenes Dataset only after filling in the NSD Data Access "
    "Agreement form (linked from https://naturalscenesdataset.org), and cite Allen et al. "
    "2022, Nature Neuroscience. COCO annotations: CC BY 4.0 (cocodataset.org)."
)


@dataclass(frozen=True)
class NSDFile:
    """One file to fetch.

    Attributes
    ----------
    path : Path
        Where :class:`NSDLayout` expects it.
    key : str
        Its key in the bucket (or, for COCO captions, the member of the zip archive).
    what : str
        The ``--what`` item it belongs to.
    """

    path: Path
    key: str
    what: str


def parse_sessions(text: str) -> list[int]:
    """``"1-37"``, ``"1,3,5-7"`` → sorted session numbers.

    Raises
    ------
    ValueError
        Naming ``--sessions``, what was given and the expected form.
    """
    sessions: set[int] = set()
    for token in (t.strip() for t in str(text).split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
        first = int(match.group(1)) if match else 0
        last = int(match.group(2) or first) if match else 0
        if not match or first < 1 or last < first:
            raise ValueError(
                f"--sessions {text!r} is not valid: expected session numbers from 1 and "
                "ranges such as 1-37 or 1,2,5-7."
            )
        sessions.update(range(first, last + 1))
    return sorted(sessions)


def _ranges(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 5]`` → ``"1-3,5"``."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ",".join(out)


def _check_inputs(subjects, sessions, what, space, fmt) -> tuple[list[int], list[str], str]:
    from brainldm._utils import check_choices, check_option

    subjects = [int(s) for s in subjects]
    bad = [s for s in subjects if s not in NSD_SESSIONS]
    if not subjects or bad:
        raise ValueError(
            f"subjects (--subjects) {subjects}: subject(s) {bad or 'none'} are not NSD subjects; "
            f"allowed: {sorted(NSD_SESSIONS)}."
        )
    what = list(NSD_WHAT) if what is None else list(what)
    check_choices("what (--what)", what, NSD_WHAT)
    check_option("space (--space)", space, NSD_SPACES)
    fmt = NSD_SPACES[space][0] if fmt is None else fmt
    if fmt not in NSD_SPACES[space]:
        raise ValueError(f"fmt (--format) {fmt!r} does not go with space (--space) {space!r}; "
                         f"allowed: {', '.join(NSD_SPACES[space])}.")  # fmt: skip
    if sessions is not None:
        for subject in subjects:
            over = [s for s in sessions if s > NSD_SESSIONS[subject]]
            if over or not sessions:
                raise ValueError(
                    f"sessions (--sessions) {_ranges(sessions) or 'none'}: subject {subject} has "
                    f"sessions 1-{NSD_SESSIONS[subject]} only (not {_ranges(over)})."
                )
    return subjects, what, fmt


def nsd_files(
    root: str | os.PathLike,
    subjects: Iterable[int],
    *,
    sessions: Sequence[int] | None = None,
    what: Iterable[str] | None = None,
    space: str = "func1pt8mm",
    fmt: str | None = None,
    beta_type: str = DEFAULT_BETA_TYPE,
) -> list[NSDFile]:
    """The files brainldm reads for ``subjects``, at the paths :class:`NSDLayout` expects.

    Parameters
    ----------
    root : path-like
        The local NSD root (need not exist yet).
    subjects : iterable of int
        NSD subjects, 1-8.
    sessions : sequence of int, optional
        Beta sessions; default every session of each subject (:data:`NSD_SESSIONS`).
    what : iterable of str, optional
        Items of :data:`NSD_WHAT`; default all.
    space : {"func1pt8mm", "fsaverage"}
        Space of the betas and noise-ceiling files.
    fmt : {"hdf5", "nifti", "fsaverage"}, optional
        Beta file format; default the first of ``NSD_SPACES[space]`` (hdf5, as
        ``data.fmt`` of a run config).
    beta_type : str
        Beta version folder, default GLMsingle ``betas_fithrf_GLMdenoise_RR``.

    Returns
    -------
    files : list of NSDFile
        Sorted by path, each file once (shared files are not repeated per subject).
        COCO captions have ``key`` ``annotations/captions_<split>.json``, their name
        inside COCO's archive.

    Raises
    ------
    ValueError
        For an unknown subject, ``what`` item, space, format or session.
    """

    subjects, what, fmt = _check_inputs(subjects, sessions, what, space, fmt)
    layout = NSDLayout(Path(root), beta_type=beta_type)
    hemis = ("lh", "rh")
    volume = fmt != "fsaverage"
    wanted: dict[str, list[Path]] = {item: [] for item in what}

    def add(item: str, *paths: Path) -> None:
        if item in wanted:
            wanted[item].extend(paths)

    add("design", layout.expdesign(), layout.stim_info())
    add("stimuli", layout.stimuli())
    add("captions", *(layout.captions(split) for split in COCO_SPLITS))
    for atlas in ATLAS_LABELS:
        add("rois", layout.ctab(atlas), *(layout.fsaverage_roi(atlas, h) for h in hemis))
    for subject in subjects:
        add("design", layout.responses(subject))
        add("brainmask", layout.brainmask(subject))
        add("rois", *(layout.roi(subject, atlas) for atlas in ATLAS_LABELS))
        for session in sessions or range(1, NSD_SESSIONS[subject] + 1):
            add("betas", *((layout.betas(subject, session, fmt),) if volume else
                           (layout.betas(subject, session, fmt, h) for h in hemis)))  # fmt: skip
        add("ncsnr", *((layout.ncsnr(subject, fmt),) if volume else
                       (layout.ncsnr(subject, fmt, h) for h in hemis)))  # fmt: skip
        for hemi in hemis:
            add("transforms", *(layout.transform(subject, f"{hemi}.func1pt8-to-{d}")
                                for d in TRANSFORM_DEPTHS))  # fmt: skip
            add("transforms", layout.transform(subject, f"{hemi}.white-to-fsaverage"))
            add("freesurfer", *(layout.surface(subject, name.format(hemi=hemi))
                                for name in SURFACE_FILES.values()))  # fmt: skip
    files: dict[Path, NSDFile] = {}
    for item, paths in wanted.items():
        for path in paths:
            if item == "captions":
                key = f"annotations/{path.name}"  # the member of COCO's zip
            else:
                key = path.relative_to(layout.root).as_posix()
            files.setdefault(path, NSDFile(path, key, item))
    return sorted(files.values(), key=lambda f: str(f.path))


def nsd_download_of(file: NSDFile, root: Path) -> str:
    """Name the ``--what`` item and NSD download a file belongs to, for error messages."""
    return f"--what {file.what}, {NSDLayout(root).download_of(file.path)}"
