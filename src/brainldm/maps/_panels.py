"""A map ready to draw: its values on a surface (or in the volume) and its colours."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brainldm.maps._projection import (
    on_surface,
    subject_meshes,
    unmask,
    volume_to_fsaverage,
    volume_to_native,
)
from brainldm.nsd import NSDLayout, has_subject_surfaces

_DIVERGING = ("RdBu_r", "coolwarm", "bwr", "seismic")
#: Colours of categorical maps (tab10 without its grey, which the background uses).
_CATEGORICAL = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#bcbd22", "#17becf")  # fmt: skip


@dataclass(frozen=True)
class MapPanel:
    """One map of a figure: its values on fsaverage (or in the volume) and its colours.

    Attributes
    ----------
    label : str
        Shown left of the row, with the number of coloured vertices or voxels.
    lh, rh : ndarray of shape (>= 10242,), optional
        fsaverage values; NaN is not coloured (e.g. not significant).
    volume : ndarray of shape (X, Y, Z), optional
        Instead of ``lh``/``rh``: a volume drawn as slices.
    cmap : str
        A diverging one (``"RdBu_r"``) centres the scale on 0.
    vmin, vmax : float, optional
    labels : sequence of str, optional
        A categorical map of integer codes 0..k-1 (e.g. best U-Net layer):
        a qualitative colormap and a legend with these names.
    n_significant : int, optional
        Voxels coloured, written beside the label (default: not written).
    meshes : dict, optional
        The subject's own surfaces, ``{kind: {hemi: SurfaceMesh}}`` plus
        ``"sulc": {hemi: ndarray or None}``; then ``lh``/``rh`` are values on
        its native vertices. None: ``lh``/``rh`` are on fsaverage.
    """

    label: str
    lh: np.ndarray | None = None
    rh: np.ndarray | None = None
    volume: np.ndarray | None = None
    cmap: str = "hot"
    vmin: float | None = None
    vmax: float | None = None
    labels: Sequence[str] | None = None
    n_significant: int | None = None
    meshes: dict | None = None

    def finite_values(self) -> np.ndarray:
        arrays = [self.volume] if self.volume is not None else [self.lh, self.rh]
        values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
        return values[np.isfinite(values)]

    def scale(self):
        """The colormap object and (vmin, vmax) of this panel."""
        import matplotlib

        if self.labels is not None:
            from matplotlib.colors import ListedColormap

            n = max(len(self.labels), 1)
            cmap = ListedColormap([_CATEGORICAL[i % len(_CATEGORICAL)] for i in range(n)])
            return cmap, -0.5, len(self.labels) - 0.5
        finite = self.finite_values()
        vmax = self.vmax
        if vmax is None:  # 1 for a map with nothing to colour (e.g. no significant voxel)
            vmax = (float(np.abs(finite).max()) if finite.size else 0.0) or 1.0
        vmin = self.vmin
        if vmin is None:
            vmin = -vmax if self.cmap in _DIVERGING else 0.0
        return matplotlib.colormaps[self.cmap], vmin, vmax

    def title(self) -> str:
        if self.n_significant is None:
            return self.label
        return f"{self.label}\n{self.n_significant} voxels coloured"


def map_panel(
    values: np.ndarray,
    label: str,
    voxel_indices: np.ndarray,
    volume_shape: Sequence[int],
    layout: NSDLayout | None = None,
    subject: int | None = None,
    meshes: dict | None = None,
    **colours,
) -> MapPanel:
    """A voxel map as a :class:`MapPanel`: on the subject's cortex, else fsaverage, else slices.

    With NSD's transforms on disk, the map is drawn on the subject's own
    inflated surface and flat patch when NSD's FreeSurfer folder has them
    (``nsddata/freesurfer/subjNN/surf``), else on fsaverage (nilearn's
    fsaverage5); without transforms, as slices of the volume.

    Parameters
    ----------
    values : ndarray of shape (n_voxels,)
        NaN is not coloured (e.g. not significant).
    label : str
    voxel_indices : ndarray of int, shape (n_voxels, 3)
    volume_shape : (X, Y, Z)
    layout : NSDLayout, optional
        With ``subject``: where the subject's transforms are looked up. None:
        the panel holds the volume.
    subject : int, optional
    meshes : dict, optional
        The subject's surfaces already read (:func:`subject_meshes`), to read
        them once for many maps.
    **colours
        ``cmap``, ``vmin``, ``vmax``, ``labels`` of :class:`MapPanel`.

    Returns
    -------
    panel : MapPanel
        ``n_significant`` is the number of voxels with a finite value.
    """
    values = np.asarray(values, dtype=float)
    volume = unmask(values, voxel_indices, volume_shape)
    n = int(np.isfinite(values).sum())
    if not on_surface(layout, subject):
        return MapPanel(label=label, volume=volume, n_significant=n, **colours)
    if meshes is None and has_subject_surfaces(layout, subject):
        meshes = subject_meshes(layout, subject)
    if meshes is not None:  # the subject's own inflated and flattened cortex
        lh, rh = volume_to_native(layout, subject, volume, order=0)
        return MapPanel(label=label, lh=lh, rh=rh, n_significant=n, meshes=meshes, **colours)
    lh, rh = volume_to_fsaverage(layout, subject, volume, order=0)
    return MapPanel(label=label, lh=lh, rh=rh, n_significant=n, **colours)

