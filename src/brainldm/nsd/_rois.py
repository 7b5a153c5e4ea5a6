"""Regions of interest: NSD's ``streams`` and ``nsdgeneral`` atlases, by label name.

In NSD's ROI volumes, -1 marks a non-cortical voxel (outside the region where
the surface atlases are defined), 0 a cortical voxel with no label, and
positive values are labels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
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
        True for selected voxels, in NIfTI axis order.
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
