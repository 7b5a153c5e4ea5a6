"""Where every NSD file lives: the one place that knows the NSD directory tree.

Paths follow the layout of the public NSD release (the ``natural-scenes-dataset``
bucket), relative to one root folder. COCO captions are not part of NSD; they
come from COCO's ``annotations_trainval2017.zip`` and default to the folder
that ``nsd_access`` uses.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: Environment variable read when no NSD root is given.
NSD_ROOT_ENV = "BRAINLDM_NSD_ROOT"

#: The default beta version: GLMsingle "b3" (fitted HRF, GLMdenoise, ridge).
DEFAULT_BETA_TYPE = "betas_fithrf_GLMdenoise_RR"

BetaFormat = Literal["hdf5", "nifti", "fsaverage"]
BETA_FORMATS: tuple[str, ...] = ("hdf5", "nifti", "fsaverage")
HEMISPHERES: tuple[str, ...] = ("lh", "rh")

# Path templates, relative to the NSD root, and the NSD download that holds each.
_TEMPLATES: dict[str, tuple[str, str]] = {
    "expdesign": ("nsddata/experiments/nsd/nsd_expdesign.mat", "nsddata"),
    "stim_info": ("nsddata/experiments/nsd/nsd_stim_info_merged.csv", "nsddata"),
    "responses": ("nsddata/ppdata/subj{subject:02d}/behav/responses.tsv", "nsddata"),
    "brainmask": ("nsddata/ppdata/subj{subject:02d}/func1pt8mm/brainmask.nii.gz", "nsddata"),
    "roi": ("nsddata/ppdata/subj{subject:02d}/func1pt8mm/roi/{atlas}.nii.gz", "nsddata"),
    "ctab": ("nsddata/freesurfer/fsaverage/label/{atlas}.mgz.ctab", "nsddata"),
    "fsaverage_roi": ("nsddata/freesurfer/fsaverage/label/{hemi}.{atlas}.mgz", "nsddata"),
    "transform": ("nsddata/ppdata/subj{subject:02d}/transforms/{name}.mgz", "nsddata"),
    # The subject's own FreeSurfer surfaces: {hemi}.inflated, {hemi}.full.flat.patch.3d, ...
    "surface": ("nsddata/freesurfer/subj{subject:02d}/surf/{name}", "nsddata"),
    "stimuli": ("nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5", "nsddata_stimuli"),
    "betas_hdf5": (
        "nsddata_betas/ppdata/subj{subject:02d}/func1pt8mm/{beta_type}/"
        "betas_session{session:02d}.hdf5",
        "nsddata_betas",
    ),
    "betas_nifti": (
        "nsddata_betas/ppdata/subj{subject:02d}/func1pt8mm/{beta_type}/"
        "betas_session{session:02d}.nii.gz",
        "nsddata_betas",
    ),
    "betas_fsaverage": (
        "nsddata_betas/ppdata/subj{subject:02d}/fsaverage/{beta_type}/"
        "{hemi}.betas_session{session:02d}.mgh",
        "nsddata_betas",
    ),
    # Noise-ceiling SNR of each voxel (vertex), beside the betas it was computed from.
    "ncsnr_volume": (
        "nsddata_betas/ppdata/subj{subject:02d}/func1pt8mm/{beta_type}/ncsnr.nii.gz",
        "nsddata_betas",
    ),
    "ncsnr_fsaverage": (
        "nsddata_betas/ppdata/subj{subject:02d}/fsaverage/{beta_type}/{hemi}.ncsnr.mgh",
        "nsddata_betas",
    ),
}

#: Cortical depths of NSD's volume-to-surface transforms (``{hemi}.func1pt8-to-{depth}``).
TRANSFORM_DEPTHS = ("layerB1", "layerB2", "layerB3")

#: NSD's public S3 bucket; the local NSD root mirrors its key layout.
NSD_BUCKET = "natural-scenes-dataset"

#: COCO's annotation archive that holds the caption files (not part of NSD).
COCO_ANNOTATIONS_ARCHIVE = "annotations_trainval2017.zip"

_COCO_DOWNLOAD = f"COCO {COCO_ANNOTATIONS_ARCHIVE} (cocodataset.org; not part of NSD)"
_DEFAULT_ANNOTATIONS = "nsddata_stimuli/stimuli/nsd/annotations"
_CAPTIONS_FILE = "captions_{coco_split}.json"

_SUBJECT_DIR = re.compile(r"subj(\d\d)")
_SESSION_FILE = {
    "hdf5": re.compile(r"betas_session(\d\d)\.hdf5"),
    "nifti": re.compile(r"betas_session(\d\d)\.nii\.gz"),
    "fsaverage": re.compile(r"lh\.betas_session(\d\d)\.mgh"),
}


def resolve_nsd_root(nsd_root: str | os.PathLike | None = None) -> Path:
    """Return the NSD root: the argument, else ``$BRAINLDM_NSD_ROOT``.

    Parameters
    ----------
    nsd_root : path-like or None
        Folder holding ``nsddata/``, ``nsddata_betas/`` and ``nsddata_stimuli/``.

    Raises
    ------
    ValueError
        If neither the argument nor the environment variable is set.
    FileNotFoundError
        If the folder does not exist.
    """
    if nsd_root is None:
        nsd_root = os.environ.get(NSD_ROOT_ENV) or None
    if nsd_root is None:
        raise ValueError(
            f"nsd_root is not set: pass nsd_root=... or set the environment variable "
            f"{NSD_ROOT_ENV} to the folder that holds nsddata/, nsddata_betas/ and "
            "nsddata_stimuli/."
        )
    root = Path(nsd_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"NSD root {str(root)!r} does not exist or is not a folder; it should hold "
            "nsddata/, nsddata_betas/ and nsddata_stimuli/."
        )
    return root


@dataclass(frozen=True)
class NSDLayout:
    """Every path of a local NSD copy, from one root folder.

    Parameters
    ----------
    root : path-like
        The NSD root (holds ``nsddata/``, ``nsddata_betas/``, ``nsddata_stimuli/``).
    annotations_dir : path-like or None
        Folder with COCO's ``captions_train2017.json`` and ``captions_val2017.json``.
        Default: ``nsddata_stimuli/stimuli/nsd/annotations`` under ``root``
        (the ``nsd_access`` convention). Nothing is ever downloaded.
    beta_type : str
        Beta version folder name, default ``"betas_fithrf_GLMdenoise_RR"``.

    Notes
    -----
    Subjects are integers (1 for ``subj01``); sessions are numbered from 1 as in
    NSD's file names. Every method returns a path without checking it exists;
    :meth:`require` checks and names the NSD download that holds a missing file.

    Examples
    --------
    >>> layout = NSDLayout("/data/nsd")
    >>> layout.betas(1, 3, "hdf5").name
    'betas_session03.hdf5'
    """

    root: Path
    annotations_dir: Path | None = None
    beta_type: str = DEFAULT_BETA_TYPE

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser())
        ann = self.annotations_dir
        ann = self.root / _DEFAULT_ANNOTATIONS if ann is None else Path(ann).expanduser()
        object.__setattr__(self, "annotations_dir", ann)

    @classmethod
    def from_root(
        cls, nsd_root: str | os.PathLike | None = None, **kwargs: object
    ) -> NSDLayout:
        """Build a layout from ``nsd_root`` or ``$BRAINLDM_NSD_ROOT`` (checked to exist)."""
        return cls(resolve_nsd_root(nsd_root), **kwargs)  # type: ignore[arg-type]

    # -- path templates ---------------------------------------------------------
    def _path(self, key: str, **fields: object) -> Path:
        template, _ = _TEMPLATES[key]
        return self.root / template.format(beta_type=self.beta_type, **fields)

    def expdesign(self) -> Path:
        """``nsd_expdesign.mat``: masterordering, subjectim, sharedix (1-based ids)."""
        return self._path("expdesign")

    def stim_info(self) -> Path:
        """``nsd_stim_info_merged.csv``: one row per 73k image (cocoId, cocoSplit, ...)."""
        return self._path("stim_info")

    def responses(self, subject: int) -> Path:
        """``responses.tsv``: one row per trial of ``subject``, all sessions."""
        return self._path("responses", subject=subject)

    def brainmask(self, subject: int) -> Path:
        """``brainmask.nii.gz`` on the func1pt8mm grid of ``subject``."""
        return self._path("brainmask", subject=subject)

    def roi(self, subject: int, atlas: str) -> Path:
        """ROI volume ``roi/{atlas}.nii.gz`` (e.g. ``streams``, ``nsdgeneral``)."""
        return self._path("roi", subject=subject, atlas=atlas)

    def ctab(self, atlas: str) -> Path:
        """Colour table ``{atlas}.mgz.ctab``: one ``value name`` line per label."""
        return self._path("ctab", atlas=atlas)

    def fsaverage_roi(self, atlas: str, hemi: str) -> Path:
        """fsaverage label file ``{hemi}.{atlas}.mgz``."""
        return self._path("fsaverage_roi", atlas=atlas, hemi=hemi)

    def transform(self, subject: int, name: str) -> Path:
        """NSD transform ``transforms/{name}.mgz``, e.g. ``lh.func1pt8-to-layerB2``."""
        return self._path("transform", subject=subject, name=name)

    def surface(self, subject: int, name: str) -> Path:
        """The subject's FreeSurfer file ``surf/{name}``, e.g. ``lh.inflated``, ``lh.full.flat.patch.3d``."""
        return self._path("surface", subject=subject, name=name)

    def stimuli(self) -> Path:
        """``nsd_stimuli.hdf5`` with dataset ``imgBrick`` (n_images, H, W, 3) uint8."""
        return self._path("stimuli")

    def captions(self, coco_split: str) -> Path:
        """COCO ``captions_{coco_split}.json`` (``train2017`` or ``val2017``)."""
        return self.annotations_dir / _CAPTIONS_FILE.format(coco_split=coco_split)

    def betas(self, subject: int, session: int, fmt: str = "hdf5", hemi: str = "lh") -> Path:
        """Beta file of one session: ``hdf5``, ``nifti`` or ``fsaverage`` (per ``hemi``)."""
        from brainldm._utils import check_option

        check_option("fmt", fmt, BETA_FORMATS)
        if fmt == "fsaverage":
            check_option("hemi", hemi, HEMISPHERES)
            return self._path("betas_fsaverage", subject=subject, session=session, hemi=hemi)
        return self._path(f"betas_{fmt}", subject=subject, session=session)

    def ncsnr(self, subject: int, fmt: str = "hdf5", hemi: str = "lh") -> Path:
        """Noise-ceiling SNR beside the betas of ``fmt``: ``ncsnr.nii.gz`` or ``{hemi}.ncsnr.mgh``.

        The HDF5 and NIfTI betas share the func1pt8mm ``ncsnr.nii.gz``.
        """
        from brainldm._utils import check_option

        check_option("fmt", fmt, BETA_FORMATS)
        if fmt == "fsaverage":
            check_option("hemi", hemi, HEMISPHERES)
            return self._path("ncsnr_fsaverage", subject=subject, hemi=hemi)
        return self._path("ncsnr_volume", subject=subject)

    # -- discovery --------------------------------------------------------------
    def subjects(self) -> list[int]:
        """Subjects with a ``nsddata/ppdata/subjXX`` folder, sorted."""
        ppdata = self.root / "nsddata" / "ppdata"
        if not ppdata.is_dir():
            return []
        found = (_SUBJECT_DIR.fullmatch(p.name) for p in ppdata.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m)

    def sessions(self, subject: int, fmt: str = "hdf5") -> list[int]:
        """Sessions (1-based) whose beta files of format ``fmt`` are on disk, sorted."""
        folder = self.betas(subject, 1, fmt).parent
        if not folder.is_dir():
            return []
        pattern = _SESSION_FILE[fmt]
        found = (pattern.fullmatch(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def require(self, path: Path) -> Path:
        """Return ``path`` if it exists, else raise a FileNotFoundError naming its download."""
        path = Path(path)
        if path.exists():
            return path
        raise FileNotFoundError(
            f"NSD file not found: {str(path)!r}. It belongs to {self.download_of(path)}; "
            f"download it into the NSD root {str(self.root)!r} keeping the NSD folder layout."
        )

    def download_of(self, path: Path) -> str:
        """Name the download (NSD top folder, or COCO) that holds ``path``."""
        path = Path(path)
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            rel = None
        if path.parent == self.annotations_dir or rel is None:
            return _COCO_DOWNLOAD
        if rel.parts[:1] == ("nsddata_stimuli",) and "annotations" in rel.parts:
            return _COCO_DOWNLOAD
        top = rel.parts[0] if rel.parts else "nsddata"
        return f"the NSD download '{top}/' (s3://{NSD_BUCKET}/{rel.as_posix()})"
