"""Map panels as pictures: rows of inflated and flat cortex, or slices of the volume.

Plots use the subject's own surfaces when the panel carries them, else
nilearn's bundled fsaverage5 (flat and inflated, both hemispheres), the first
10,242 vertices of fsaverage; a volume mosaic when there are no surfaces.
matplotlib/nilearn are imported lazily; figures are returned, never shown.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainldm.maps._panels import MapPanel, map_panel
from brainldm.maps._projection import FSAVERAGE5_VERTICES
from brainldm.nsd import NSDLayout


def _fsaverage5(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    if len(values) < FSAVERAGE5_VERTICES:
        raise ValueError(
            f"a hemisphere map has {len(values)} vertices; fsaverage5 needs the first "
            f"{FSAVERAGE5_VERTICES} of an fsaverage map."
        )
    return values[:FSAVERAGE5_VERTICES]


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
