"""Per-voxel results back into volumes, onto fsaverage, and into pictures.

- :func:`unmask` puts a voxel vector back into the subject's grid through the
  voxel indices that extracted it (exact inverse of masking).
- :func:`volume_to_fsaverage` follows NSD's own transforms (nsdcode's logic):
  sample the volume at each native vertex's func1pt8 coordinates for the three
  cortical depths (layerB1-3), average them, then gather by the native vertex
  nearest each fsaverage vertex (``white-to-fsaverage``).
- Plots use nilearn's bundled fsaverage5 (flat and inflated, both hemispheres),
  the first 10,242 vertices of fsaverage; a volume mosaic when surfaces are
  missing. matplotlib/nilearn are imported lazily; figures are returned, never shown.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainldm.nsd import NSDLayout, has_subject_surfaces

logger = logging.getLogger(__name__)

#: Vertices per hemisphere of fsaverage5 (a prefix of fsaverage's 163,842).
FSAVERAGE5_VERTICES = 10242
DEPTHS = ("layerB1", "layerB2", "layerB3")


def unmask(
    values: np.ndarray,
    voxel_indices: np.ndarray,
    volume_shape: Sequence[int],
    affine: np.ndarray | None = None,
    fill: float = np.nan,
):
    """A voxel vector back into a volume.

    Parameters
    ----------
    values : ndarray of shape (n_voxels,) or (n_voxels, n_maps)
    voxel_indices : ndarray of int, shape (n_voxels, 3)
        (x, y, z) of each value, as ``VolumeMask.voxel_indices`` / ``SubjectSplit.voxel_indices``.
    volume_shape : (X, Y, Z)
    affine : ndarray of shape (4, 4), optional
        If given, a ``nibabel.Nifti1Image`` is returned instead of an array.
    fill : float
        Value outside the mask.

    Returns
    -------
    volume : ndarray of shape (X, Y, Z[, n_maps]) or nibabel.Nifti1Image
    """
    values = np.asarray(values)
    idx = np.asarray(voxel_indices, dtype=np.int64)
    if idx.ndim != 2 or idx.shape[1] != 3 or len(idx) != len(values):
        raise ValueError(
            f"voxel_indices must have shape (n_voxels, 3) with n_voxels = {len(values)}, "
            f"got {idx.shape}."
        )
    shape = tuple(int(s) for s in volume_shape) + values.shape[1:]
    dtype = np.result_type(values.dtype, np.float32) if np.isnan(fill) else values.dtype
    volume = np.full(shape, fill, dtype=dtype)
    volume[idx[:, 0], idx[:, 1], idx[:, 2]] = values
    if affine is None:
        return volume
    import nibabel as nib

    return nib.Nifti1Image(volume, affine)


def mask_volume(volume, voxel_indices: np.ndarray) -> np.ndarray:
    """Values of a volume (array or NIfTI image) at ``voxel_indices``: inverse of :func:`unmask`."""
    data = np.asarray(volume.dataobj) if hasattr(volume, "dataobj") else np.asarray(volume)
    idx = np.asarray(voxel_indices, dtype=np.int64)
    return data[idx[:, 0], idx[:, 1], idx[:, 2]]


def _read_mgz(path: Path) -> np.ndarray:
    import nibabel as nib

    return np.asarray(nib.load(path).dataobj)


def volume_to_native(
    layout: NSDLayout, subject: int, volume: np.ndarray, order: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Sample a func1pt8mm volume at the subject's own surface vertices (NSD's transforms).

    The volume is sampled at each native vertex's coordinates at the three
    cortical depths (``{hemi}.func1pt8-to-layerB1-3``) and the depths are averaged.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
    volume : ndarray of shape (X, Y, Z)
        NaN outside the data.
    order : int
        0 nearest, 1 linear interpolation.

    Returns
    -------
    lh, rh : ndarray of shape (n_native_vertices,)
        Per hemisphere; NaN where no depth has data.
    """
    import warnings

    from scipy.ndimage import map_coordinates

    out = []
    for hemi in ("lh", "rh"):
        depths = []
        for depth in DEPTHS:
            path = layout.require(layout.transform(subject, f"{hemi}.func1pt8-to-{depth}"))
            coords = _read_mgz(path).reshape(-1, 3).T - 1  # NSD coordinates are 1-based
            valid = np.isfinite(volume)
            sampled = map_coordinates(np.nan_to_num(volume), coords, order=order, cval=np.nan)
            weight = map_coordinates(valid.astype(float), coords, order=order, cval=0.0)
            sampled[weight < 0.5] = np.nan
            depths.append(sampled)
        with warnings.catch_warnings():  # vertices with no data at any depth stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            out.append(np.nanmean(np.stack(depths), axis=0))
    return out[0], out[1]


def volume_to_fsaverage(
    layout: NSDLayout, subject: int, volume: np.ndarray, order: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Sample a func1pt8mm volume onto fsaverage through NSD's transform files.

    :func:`volume_to_native`, then each fsaverage vertex takes the value of its
    nearest native vertex (``{hemi}.white-to-fsaverage``), as nsdcode does.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
    volume : ndarray of shape (X, Y, Z)
        NaN outside the data.
    order : int
        0 nearest, 1 linear interpolation.

    Returns
    -------
    lh, rh : ndarray of shape (n_fsaverage_vertices,)
        Values on fsaverage vertices (163,842 each in NSD); NaN where no data.
    """
    out = []
    for hemi, native in zip(("lh", "rh"), volume_to_native(layout, subject, volume, order),
                            strict=True):  # fmt: skip
        index = _read_mgz(layout.require(layout.transform(subject, f"{hemi}.white-to-fsaverage")))
        out.append(native[np.rint(index.ravel()).astype(np.int64) - 1])
    return out[0], out[1]


def _fsaverage5(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    if len(values) < FSAVERAGE5_VERTICES:
        raise ValueError(
            f"a hemisphere map has {len(values)} vertices; fsaverage5 needs the first "
            f"{FSAVERAGE5_VERTICES} of an fsaverage map."
        )
    return values[:FSAVERAGE5_VERTICES]


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


def plot_surface_rows(
    panels: Sequence[MapPanel],
    kinds: Sequence[str] = ("inflated", "flat"),
    title: str | None = None,
):
    """Maps one per row on nilearn's bundled fsaverage5, each with its colour scale.

    Columns: for ``"inflated"`` the lateral and medial views of each hemisphere,
    for ``"flat"`` the flattened hemispheres (occipital pole at the centre).

    Parameters
    ----------
    panels : sequence of MapPanel
        With ``lh``/``rh`` set.
    kinds : sequence of {"inflated", "flat"}
    title : str, optional

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from nilearn import datasets, plotting

    from brainldm._utils import check_choices

    check_choices("kinds", kinds, ("inflated", "flat"))
    if not panels or not kinds:
        raise ValueError("plot_surface_rows needs at least one panel and one kind of surface.")
    meshes = datasets.load_fsaverage("fsaverage5")
    sulcal = _shading({hemi: part for hemi, part in datasets.load_fsaverage_data(
        mesh="fsaverage5", data_type="sulcal").data.parts.items()})  # fmt: skip
    columns = [(kind, hemi, view) for kind in kinds for hemi in ("left", "right")
               for view in (("dorsal",) if kind == "flat" else ("lateral", "medial"))]  # fmt: skip
    fig = plt.figure(figsize=(2.1 * len(columns) + 1.6, 2.2 * len(panels) + 0.6))
    grid = fig.add_gridspec(len(panels), len(columns) + 1,
                            width_ratios=[1.0] * len(columns) + [0.12])  # fmt: skip
    for row, panel in enumerate(panels):
        if panel.lh is None or panel.rh is None:
            raise ValueError(f"panel {panel.label!r} has no fsaverage values (lh, rh).")
        cmap, vmin, vmax = panel.scale()
        for col, (kind, hemi, view) in enumerate(columns):
            ax = fig.add_subplot(grid[row, col], projection="3d")
            values = panel.lh if hemi == "left" else panel.rh
            if panel.meshes is None:  # fsaverage, drawn on fsaverage5
                mesh, data, bg = meshes[kind].parts[hemi], _fsaverage5(values), sulcal[hemi]
            else:  # the subject's own surface: values on its native vertices
                own = panel.meshes[kind][hemi[0] + "h"]
                mesh = (own.coords, own.faces)
                data = np.asarray(values, dtype=float)[own.vertices]
                sulc = panel.meshes.get("sulc", {}).get(hemi[0] + "h")
                bg = None if sulc is None else _shading({hemi: sulc[own.vertices]})[hemi]
            plotting.plot_surf(
                mesh, surf_map=data, hemi=hemi, view=view, bg_map=bg, cmap=cmap, vmin=vmin,
                vmax=vmax, axes=ax, figure=fig, engine="matplotlib", colorbar=False,
                bg_on_data=False,
            )  # fmt: skip
            for mesh_faces in ax.collections:  # an SVG embeds the mesh as pixels, not 20k polygons
                mesh_faces.set_rasterized(True)
            if row == 0:
                ax.set_title(f"{hemi} {kind}{'' if kind == 'flat' else ' ' + view}", fontsize=7)
            if col == 0:
                ax.text2D(-0.15, 0.5, panel.title(), transform=ax.transAxes, rotation=90,
                          va="center", ha="center", fontsize=7)  # fmt: skip
        _scale_bar(fig, fig.add_subplot(grid[row, -1]), panel, cmap, vmin, vmax)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _shading(sulcal: dict) -> dict:
    """Light greys from sulcal depth (sulci darker), in [0, 1] so nilearn keeps them as given."""
    out = {}
    for hemi, depth in sulcal.items():
        depth = np.asarray(depth, dtype=float)
        span = np.ptp(depth) or 1.0
        out[hemi] = 0.2 + 0.3 * (depth - depth.min()) / span
    return out


def _scale_bar(fig, ax, panel: MapPanel, cmap, vmin: float, vmax: float) -> None:
    import matplotlib

    if panel.labels is not None:
        from matplotlib.patches import Patch

        ax.axis("off")
        ax.legend(handles=[Patch(color=cmap(i), label=name) for i, name in enumerate(panel.labels)],
                  loc="center left", fontsize=6, frameon=False)  # fmt: skip
        return
    sm = matplotlib.cm.ScalarMappable(cmap=cmap)
    sm.set_clim(vmin, vmax)
    fig.colorbar(sm, cax=ax)
    ax.tick_params(labelsize=6)


def plot_surface(
    lh: np.ndarray,
    rh: np.ndarray,
    kind: str = "inflated",
    cmap: str = "hot",
    vmin: float | None = None,
    vmax: float | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    n_significant: int | None = None,
):
    """Both hemispheres of an fsaverage map on nilearn's bundled fsaverage5.

    Parameters
    ----------
    lh, rh : ndarray of shape (>= 10242,)
        fsaverage (or fsaverage5) values; NaN is not coloured (e.g. non-significant).
    kind : {"inflated", "flat"}
    cmap : str
        Colormap; use a diverging one (``"RdBu_r"``) for signed maps.
    vmin, vmax : float, optional
    labels : sequence of str, optional
        For a categorical map of integer codes 0..k-1 (e.g. best U-Net layer):
        a qualitative colormap and a legend with these names.
    title : str, optional
    n_significant : int, optional
        Number of coloured voxels, written on the map.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    from brainldm._utils import check_option

    check_option("kind", kind, ("inflated", "flat"))
    panel = MapPanel(label=title or "", lh=lh, rh=rh, cmap=cmap, vmin=vmin, vmax=vmax,
                     labels=labels, n_significant=n_significant)  # fmt: skip
    return plot_surface_rows([panel], kinds=(kind,), title=title)


def plot_volume_mosaic(
    volume: np.ndarray,
    cmap: str = "hot",
    vmin: float | None = None,
    vmax: float | None = None,
    n_slices: int = 12,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    n_significant: int | None = None,
):
    """Axial slices of a volume (NaN transparent): the map when no surface is available.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    panel = MapPanel(label=title or "", volume=volume, cmap=cmap, vmin=vmin, vmax=vmax,
                     labels=labels, n_significant=n_significant)  # fmt: skip
    return plot_volume_rows([panel], n_slices=n_slices, title=title)


def plot_volume_rows(panels: Sequence[MapPanel], n_slices: int = 8, title: str | None = None):
    """Maps one per row as axial slices of the volume (NaN transparent), each with its scale.

    Parameters
    ----------
    panels : sequence of MapPanel
        With ``volume`` set, all of one shape.
    n_slices : int
        Slices per row, evenly spaced over the slices that hold data.
    title : str, optional

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not panels:
        raise ValueError("plot_volume_rows needs at least one panel.")
    volumes = [np.asarray(p.volume, dtype=float) for p in panels]
    data = np.isfinite(np.stack(volumes)).any(axis=(0, 1, 2))
    zs = np.flatnonzero(data) if data.any() else np.arange(volumes[0].shape[2])
    picks = zs[np.linspace(0, len(zs) - 1, min(n_slices, len(zs))).astype(int)]
    fig = plt.figure(figsize=(1.6 * len(picks) + 1.8, 1.8 * len(panels) + 0.6))
    grid = fig.add_gridspec(len(panels), len(picks) + 1,
                            width_ratios=[1.0] * len(picks) + [0.12])  # fmt: skip
    for row, (panel, volume) in enumerate(zip(panels, volumes, strict=True)):
        cmap, vmin, vmax = panel.scale()
        for col, z in enumerate(picks):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(np.ma.masked_invalid(volume[:, :, z].T), origin="lower", cmap=cmap,
                      vmin=vmin, vmax=vmax)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"z={z}", fontsize=7)
            if col == 0:
                ax.set_ylabel(panel.title(), fontsize=7)
        _scale_bar(fig, fig.add_subplot(grid[row, -1]), panel, cmap, vmin, vmax)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


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


def subject_meshes(layout: NSDLayout, subject: int, kinds: Sequence[str] = ("inflated", "flat")):
    """The subject's own surfaces for :class:`MapPanel` (``meshes``), from NSD's FreeSurfer folder.

    Returns
    -------
    meshes : dict
        ``{kind: {hemi: SurfaceMesh}}`` and ``"sulc": {hemi: ndarray or None}``.
    """
    from brainldm.nsd import load_subject_sulc, load_subject_surface

    meshes: dict = {kind: {hemi: load_subject_surface(layout, subject, hemi, kind)
                           for hemi in ("lh", "rh")} for kind in kinds}  # fmt: skip
    meshes["sulc"] = {hemi: load_subject_sulc(layout, subject, hemi) for hemi in ("lh", "rh")}
    return meshes


def on_surface(layout: NSDLayout | None, subject: int | None) -> bool:
    """Whether the subject's volume-to-fsaverage transforms are on disk."""
    return (
        layout is not None
        and subject is not None
        and layout.transform(subject, "lh.white-to-fsaverage").exists()
    )


def plot_map_rows(
    panels: Sequence[MapPanel], kinds: Sequence[str] = ("inflated", "flat"), title=None
):
    """Panels on the surface (:func:`plot_surface_rows`) or as slices (:func:`plot_volume_rows`).

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    if all(p.volume is None for p in panels):
        return plot_surface_rows(panels, kinds=kinds, title=title)
    if any(p.volume is None for p in panels):
        raise ValueError("panels mix surface and volume maps; project them the same way.")
    return plot_volume_rows(panels, title=title)


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    from brainldm._utils import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path


def draw_map(
    values: np.ndarray,
    voxel_indices: np.ndarray,
    volume_shape: Sequence[int],
    folder: str | os.PathLike,
    name: str,
    layout: NSDLayout | None = None,
    subject: int | None = None,
    surfaces: Sequence[str] = ("flat", "inflated"),
    title: str | None = None,
    **plot_options,
) -> list[Path]:
    """Draw one voxel map to PNG files: on fsaverage when NSD's transforms are there, else slices.

    Each picture has its colour scale and says how many voxels are coloured.

    Parameters
    ----------
    values : ndarray of shape (n_voxels,)
        NaN is not coloured (e.g. voxels not significant).
    voxel_indices : ndarray of int, shape (n_voxels, 3)
    volume_shape : (X, Y, Z)
    folder : path-like
        Gets ``{name}_{surface}.png`` for each of ``surfaces``, or ``{name}.png``.
    name : str
    layout : NSDLayout, optional
        With ``subject``: where the subject's ``lh/rh.white-to-fsaverage``
        transforms are looked up. None: a volume mosaic.
    subject : int, optional
    surfaces : sequence of {"flat", "inflated"}
    title : str, optional
        Default: ``name``.
    **plot_options
        ``cmap``, ``vmin``, ``vmax``, ``labels`` of :class:`MapPanel`.

    Returns
    -------
    paths : list of Path
    """
    folder = Path(folder)
    panel = map_panel(values, title or name, voxel_indices, volume_shape, layout, subject,
                      **plot_options)  # fmt: skip
    if panel.volume is not None:
        return [save_figure(plot_volume_rows([panel], n_slices=12), folder / f"{name}.png")]
    return [save_figure(plot_surface_rows([panel], kinds=(kind,)), folder / f"{name}_{kind}.png")
            for kind in surfaces]  # fmt: skip
