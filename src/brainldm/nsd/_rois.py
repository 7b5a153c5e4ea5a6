"""Regions of interest: NSD's ``streams`` and ``nsdgeneral`` atlases, by label name.

In NSD's ROI volumes, -1 marks a non-cortical voxel (outside the region where
the surface atlases are defined), 0 a cortical voxel with no label, and
positive values are labels.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainldm.nsd._layout import NSDLayout

logger = logging.getLogger(__name__)

#: Labels of NSD's ``streams`` atlas (``streams.mgz.ctab``). The paper decodes
#: z from ``early`` and c from ``ventral`` (seed_code.md §2).
STREAMS_LABELS: dict[str, int] = {
    "early": 1,
    "midventral": 2,
    "midlateral": 3,
    "midparietal": 4,
    "ventral": 5,
    "lateral": 6,
    "parietal": 7,
}

#: Labels of the atlases whose tables are known without their ``.ctab`` file.
ATLAS_LABELS: dict[str, dict[str, int]] = {
    "streams": STREAMS_LABELS,
    "nsdgeneral": {"nsdgeneral": 1},
}


@dataclass(frozen=True)
class VolumeMask:
    """A boolean voxel mask on a subject's func1pt8mm grid.

    Attributes
    ----------
    mask : ndarray of bool, shape (X, Y, Z)
        True for selected voxels, in NIfTI axis order. Shape
        (n_vertices_lh + n_vertices_rh,) for an fsaverage vertex mask.
    affine : ndarray of shape (4, 4)
        Voxel-to-world affine of the ROI file.
    subject : int
    atlas : str
    rois : tuple of str
        Label names whose union the mask is.

    Notes
    -----
    Voxel columns of every beta array built with this mask follow
    :attr:`voxel_indices`, i.e. ``np.nonzero(mask)`` (C order over X, Y, Z).
    """

    mask: np.ndarray
    affine: np.ndarray
    subject: int
    atlas: str
    rois: tuple[str, ...]

    @property
    def n_voxels(self) -> int:
        """Number of selected voxels."""
        return int(self.mask.sum())

    @property
    def voxel_indices(self) -> np.ndarray:
        """Array of shape (n_voxels, 3): (x, y, z) index of each column."""
        return np.argwhere(self.mask)


def read_ctab(path: str | Path) -> dict[str, int]:
    """Read a FreeSurfer-style ``.ctab`` (``value name`` per line) as {name: value}."""
    labels: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].lstrip("-").isdigit():
            labels[parts[1]] = int(parts[0])
    return labels


def atlas_labels(layout: NSDLayout, atlas: str) -> dict[str, int]:
    """Label names of ``atlas``: from its ``.ctab`` file if present, else the known table.

    Label 0 ("Unknown") is never a selectable ROI.
    """
    ctab = layout.ctab(atlas)
    if ctab.exists():
        labels = read_ctab(ctab)
    elif atlas in ATLAS_LABELS:
        labels = dict(ATLAS_LABELS[atlas])
    else:
        layout.require(ctab)  # raises, naming the download
    return {name: value for name, value in labels.items() if value > 0}


def load_roi_mask(
    layout: NSDLayout,
    subject: int,
    rois: str | Iterable[str],
    atlas: str = "streams",
) -> VolumeMask:
    """Voxel mask of the union of ROI labels of one atlas, on the func1pt8mm grid.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
        NSD subject (1 for ``subj01``).
    rois : str or iterable of str
        Label name(s), e.g. ``"early"`` or ``("early", "midventral")`` for ``streams``,
        ``"nsdgeneral"`` for ``nsdgeneral``.
    atlas : str
        ROI file ``roi/{atlas}.nii.gz``: ``"streams"`` (default), ``"nsdgeneral"`` or
        any NSD volume atlas whose ``.ctab`` is present.

    Returns
    -------
    mask : VolumeMask
    """
    import nibabel as nib

    from brainldm._utils import check_choices

    names = (rois,) if isinstance(rois, str) else tuple(rois)
    if not names:
        raise ValueError("rois is empty; give at least one ROI label name.")
    labels = atlas_labels(layout, atlas)
    check_choices("rois", names, labels)
    img = nib.load(layout.require(layout.roi(subject, atlas)))
    values = np.asarray(img.dataobj)
    mask = np.isin(np.rint(values).astype(np.int64), [labels[n] for n in names])
    logger.info("subject %d, %s %s: %d voxels", subject, atlas, "+".join(names), mask.sum())
    return VolumeMask(mask=mask, affine=img.affine, subject=subject, atlas=atlas, rois=names)


def load_fsaverage_roi_mask(
    layout: NSDLayout, rois: str | Iterable[str], atlas: str = "streams"
) -> np.ndarray:
    """Vertex mask on fsaverage, left hemisphere then right, shape (n_vertices_lh + rh,)."""
    import nibabel as nib

    from brainldm._utils import check_choices

    names = (rois,) if isinstance(rois, str) else tuple(rois)
    labels = atlas_labels(layout, atlas)
    check_choices("rois", names, labels)
    values = [
        np.asarray(nib.load(layout.require(layout.fsaverage_roi(atlas, hemi))).dataobj).ravel()
        for hemi in ("lh", "rh")
    ]
    return np.isin(np.rint(np.concatenate(values)).astype(np.int64), [labels[n] for n in names])


# -- voxel sets: the columns of a split ------------------------------------------

_MASK_SUFFIXES = (".nii.gz", ".nii")

VoxelSet = str | os.PathLike | Sequence[str]


def _is_mask_file(voxel_set: object) -> bool:
    return isinstance(voxel_set, str | os.PathLike) and str(voxel_set).endswith(_MASK_SUFFIXES)


def normalise_voxel_set(voxel_set: VoxelSet) -> str | tuple[str, ...]:
    """Return a voxel set as a split records it: a str, or a tuple of label names.

    Paths become str; lists become tuples. Raises naming what was given.
    """
    if isinstance(voxel_set, os.PathLike):
        if not _is_mask_file(voxel_set):
            raise ValueError(
                f"voxel_set={str(voxel_set)!r} is a path but not a NIfTI mask; "
                f"a mask file must end with {' or '.join(_MASK_SUFFIXES)}."
            )
        return str(voxel_set)
    if isinstance(voxel_set, str):
        if not voxel_set:
            raise ValueError(
                "voxel_set='' is empty; give 'brain', 'nsdgeneral', a label or a file."
            )
        return voxel_set
    if isinstance(voxel_set, Sequence):
        names = tuple(voxel_set)
        if not names:
            raise ValueError(
                "voxel_set=[] is an empty union; give at least one label name, "
                "e.g. ['early', 'ventral']."
            )
        bad = [n for n in names if not isinstance(n, str) or not n or _is_mask_file(n)]
        if bad:
            raise ValueError(
                f"voxel_set={list(names)!r}: a union lists label names of the atlas only; "
                f"invalid entries: {bad!r}."
            )
        return names
    raise TypeError(
        f"voxel_set={voxel_set!r} is not valid; give 'brain', 'nsdgeneral', a label name, "
        "a list of label names, or a path to a .nii/.nii.gz mask."
    )


def voxel_set_name(voxel_set: VoxelSet) -> str:
    """Name of a voxel set: the key of its betas in a split and its HDF5 group name.

    Parameters
    ----------
    voxel_set : str, path-like, or sequence of str
        ``"brain"``, ``"nsdgeneral"``, a label name (``"early"``), a list of label
        names (their union) or a ``.nii``/``.nii.gz`` mask file.

    Returns
    -------
    name : str
        ``"brain"``, ``"nsdgeneral"``, ``"early"``, ``"early+ventral"`` (given
        order), or ``"mask-{stem}"`` for a file (characters outside
        ``[A-Za-z0-9_.-]`` of the stem become ``_``). Never contains ``/``.

    Examples
    --------
    >>> voxel_set_name(["early", "ventral"])
    'early+ventral'
    >>> voxel_set_name("/data/my masks/V1 left.nii.gz")
    'mask-V1_left'
    """
    spec = normalise_voxel_set(voxel_set)
    if isinstance(spec, str) and _is_mask_file(spec):
        stem = Path(spec).name
        stem = stem[: -len(".nii.gz")] if stem.endswith(".nii.gz") else stem[: -len(".nii")]
        return "mask-" + (re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "_")
    name = spec if isinstance(spec, str) else "+".join(spec)
    if "/" in name or name in (".", ".."):
        raise ValueError(
            f"voxel_set={voxel_set!r}: a label name cannot contain '/' or be '.' or '..' "
            "(it names an HDF5 group); a mask file must end with .nii or .nii.gz."
        )
    return name


def _nonzero(img) -> np.ndarray:
    """Boolean volume: True where a mask image is nonzero (NaN counts as out)."""
    return np.nan_to_num(np.asarray(img.dataobj), nan=0.0) != 0


def load_voxel_set(
    layout: NSDLayout,
    subject: int,
    voxel_set: VoxelSet,
    atlas: str = "streams",
    *,
    space: str = "func1pt8mm",
) -> VolumeMask:
    """Voxel mask of one voxel set on a subject's func1pt8mm grid.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
        NSD subject (1 for ``subj01``).
    voxel_set : str, path-like, or sequence of str
        - ``"brain"``: the nonzero voxels of the subject's ``brainmask.nii.gz``;
        - ``"nsdgeneral"``: label 1 of the ``nsdgeneral`` atlas, whatever ``atlas`` is;
        - a label name of ``atlas``, e.g. ``"early"``;
        - a list or tuple of label names of ``atlas``: their union;
        - a path ending in ``.nii`` or ``.nii.gz``: your own mask on the subject's
          func1pt8mm grid (nonzero voxels are in).
    atlas : str
        Atlas of label names (``roi/{atlas}.nii.gz``), default ``"streams"``.
    space : {"func1pt8mm", "fsaverage"}
        ``"fsaverage"``: a vertex mask instead, lh then rh vertices, from the
        fsaverage label files (``"brain"`` = every vertex; no mask files).

    Returns
    -------
    mask : VolumeMask
        For ``"brain"``: atlas ``"brainmask"``, rois ``("brain",)``; for a file:
        atlas the file's path, rois ``(voxel_set_name(voxel_set),)``. On
        fsaverage, ``mask`` has shape (n_vertices_lh + n_vertices_rh,), so
        ``voxel_indices`` (n, 1) holds vertex numbers, and ``affine`` is eye(4).

    Raises
    ------
    FileNotFoundError
        If the mask, ROI or brain mask file is missing (named).
    ValueError
        For an unknown label (the valid ones are listed), an empty list, or a mask
        file whose grid differs from the subject's brain mask.
    """
    import nibabel as nib

    from brainldm._utils import check_option

    check_option("space", space, ("func1pt8mm", "fsaverage"))
    spec = normalise_voxel_set(voxel_set)
    name = voxel_set_name(spec)
    if space == "fsaverage":
        return fsaverage_voxel_set(layout, subject, spec, atlas)
    if isinstance(spec, tuple):
        return load_roi_mask(layout, subject, spec, atlas)
    if spec == "nsdgeneral":
        return load_roi_mask(layout, subject, "nsdgeneral", "nsdgeneral")
    if spec == "brain":
        img = nib.load(layout.require(layout.brainmask(subject)))
        mask = _nonzero(img)
        logger.info("subject %d, brain mask: %d voxels", subject, mask.sum())
        return VolumeMask(
            mask=mask, affine=img.affine, subject=subject, atlas="brainmask", rois=("brain",)
        )
    if not _is_mask_file(spec):
        return load_roi_mask(layout, subject, spec, atlas)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"voxel_set mask file not found: {str(path)!r}.")
    brainmask = layout.require(layout.brainmask(subject))
    expected = tuple(int(n) for n in nib.load(brainmask).shape)
    try:
        img = nib.load(path)
        shape = tuple(int(n) for n in img.shape)
    except Exception as err:  # nibabel raises several types for unreadable files
        raise ValueError(f"cannot read the voxel_set mask file {str(path)!r}: {err}") from None
    if shape != expected:
        raise ValueError(
            f"the voxel_set mask file {str(path)!r} has shape {shape}, but subject {subject}'s "
            f"func1pt8mm grid (brainmask.nii.gz) is {expected}; the mask must be on that grid."
        )
    ref_affine = nib.load(brainmask).affine
    if not np.allclose(img.affine, ref_affine, atol=1e-3):
        logger.warning("%s: affine differs from %s; using it as is", path, brainmask)
    mask = _nonzero(img)
    logger.info("subject %d, mask %s: %d voxels", subject, path, mask.sum())
    return VolumeMask(mask=mask, affine=img.affine, subject=subject, atlas=str(path), rois=(name,))


def fsaverage_voxel_set(
    layout: NSDLayout,
    subject: int,
    voxel_set: VoxelSet,
    atlas: str = "streams",
    n_vertices: tuple[int, int] | None = None,
) -> VolumeMask:
    """Vertex mask of one voxel set on fsaverage, lh then rh, as a 1-D :class:`VolumeMask`.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
        Recorded in the result (fsaverage labels are the same for every subject).
    voxel_set : str or sequence of str
        ``"brain"`` (every vertex), ``"nsdgeneral"``, a label name of ``atlas`` or
        a list of them. Mask files are volumes and are refused.
    atlas : str
    n_vertices : (int, int), optional
        Vertices of the lh and rh betas; the label files must match. Default: read
        from the ``atlas`` label files.

    Returns
    -------
    mask : VolumeMask
        ``mask`` of shape (n_vertices_lh + n_vertices_rh,), ``affine`` eye(4).
    """
    import nibabel as nib

    spec = normalise_voxel_set(voxel_set)
    name = voxel_set_name(spec)
    if isinstance(spec, str) and _is_mask_file(spec):
        raise ValueError(
            f"voxel_set={spec!r} is a func1pt8mm mask file, which fsaverage betas cannot use; "
            "with fmt='fsaverage' give 'brain', 'nsdgeneral' or label names."
        )
    used = "nsdgeneral" if spec == "nsdgeneral" else atlas
    files = [layout.fsaverage_roi(used, hemi) for hemi in ("lh", "rh")]
    if spec == "brain":
        if n_vertices is None:
            n_vertices = tuple(  # type: ignore[assignment]
                int(np.prod(nib.load(layout.require(p)).shape)) for p in files
            )
        mask = np.ones(sum(n_vertices), dtype=bool)
        used, rois = "fsaverage", ("brain",)
    else:
        labels = spec if isinstance(spec, tuple) else (spec,)
        mask = load_fsaverage_roi_mask(layout, labels, used)
        rois = labels
        if n_vertices is not None and mask.size != sum(n_vertices):
            raise ValueError(
                f"the fsaverage label files {[str(p) for p in files]} hold {mask.size} vertices, "
                f"but the fsaverage betas hold {n_vertices[0]} + {n_vertices[1]} = "
                f"{sum(n_vertices)}; they must be on the same surface."
            )
    logger.info("fsaverage %s: %d vertices", name, mask.sum())
    return VolumeMask(mask=mask, affine=np.eye(4), subject=subject, atlas=used, rois=rois)
