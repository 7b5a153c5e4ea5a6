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
from pathlib import Path

import numpy as np

from brainldm.nsd import NSDLayout

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


def volume_to_fsaverage(
    layout: NSDLayout, subject: int, volume: np.ndarray, order: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Sample a func1pt8mm volume onto fsaverage through NSD's transform files.

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
        import warnings

        with warnings.catch_warnings():  # vertices with no data at any depth stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            native = np.nanmean(np.stack(depths), axis=0)
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


def plot_surface(
    lh: np.ndarray,
    rh: np.ndarray,
    kind: str = "inflated",
    cmap: str = "hot",
    vmin: float | None = None,
    vmax: float | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
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

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from nilearn import datasets, plotting

    from brainldm._utils import check_option

    check_option("kind", kind, ("inflated", "flat"))
    mesh = datasets.load_fsaverage("fsaverage5")[kind]
    data = {"left": _fsaverage5(lh), "right": _fsaverage5(rh)}
    views = ("dorsal",) if kind == "flat" else ("lateral", "medial")
    if labels is not None:
        cmap_obj = matplotlib.colormaps["tab10"].resampled(max(len(labels), 1))
        vmin, vmax = -0.5, len(labels) - 0.5
    else:
        cmap_obj = matplotlib.colormaps[cmap]
        finite = np.concatenate([v[np.isfinite(v)] for v in data.values()])
        if vmax is None:  # 1 for a map with nothing to colour (e.g. no significant voxel)
            vmax = (float(np.abs(finite).max()) if finite.size else 0.0) or 1.0
        if vmin is None:
            vmin = -vmax if cmap in ("RdBu_r", "coolwarm", "bwr", "seismic") else 0.0
    fig, axes = plt.subplots(
        len(views), 2, subplot_kw={"projection": "3d"}, figsize=(8, 3.6 * len(views))
    )
    axes = np.atleast_2d(axes)
    for col, hemi in enumerate(("left", "right")):
        for row, view in enumerate(views):
            plotting.plot_surf(
                mesh.parts[hemi], surf_map=data[hemi], hemi=hemi, view=view,
                cmap=cmap_obj, vmin=vmin, vmax=vmax, axes=axes[row, col], figure=fig,
                engine="matplotlib", colorbar=False, bg_on_data=False,
            )  # fmt: skip
            axes[row, col].set_title(f"{hemi} {view}", fontsize=8)
    if labels is not None:
        from matplotlib.patches import Patch

        handles = [Patch(color=cmap_obj(i), label=name) for i, name in enumerate(labels)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(labels), 5), fontsize=8)
    else:
        sm = matplotlib.cm.ScalarMappable(cmap=cmap_obj)
        sm.set_clim(vmin, vmax)
        fig.colorbar(sm, ax=axes.ravel().tolist(), shrink=0.6)
    if title:
        fig.suptitle(title)
    return fig


def plot_volume_mosaic(
    volume: np.ndarray,
    cmap: str = "hot",
    vmin: float | None = None,
    vmax: float | None = None,
    n_slices: int = 12,
    labels: Sequence[str] | None = None,
    title: str | None = None,
):
    """Axial slices of a volume (NaN transparent): the map when no surface is available.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    volume = np.asarray(volume, dtype=float)
    zs = np.flatnonzero(np.isfinite(volume).any(axis=(0, 1)))
    if zs.size == 0:
        zs = np.arange(volume.shape[2])
    picks = zs[np.linspace(0, len(zs) - 1, min(n_slices, len(zs))).astype(int)]
    ncols = min(6, len(picks))
    nrows = int(np.ceil(len(picks) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2 * ncols, 2 * nrows + 0.4), squeeze=False)
    finite = volume[np.isfinite(volume)]
    if labels is not None:
        cmap_obj = matplotlib.colormaps["tab10"].resampled(max(len(labels), 1))
        vmin, vmax = -0.5, len(labels) - 0.5
    else:
        cmap_obj = matplotlib.colormaps[cmap]
        vmax = vmax if vmax is not None else (float(np.abs(finite).max()) if finite.size else 1.0)
        vmin = vmin if vmin is not None else (-vmax if cmap in ("RdBu_r", "coolwarm") else 0.0)
    image = None
    for ax in axes.ravel():
        ax.axis("off")
    for ax, z in zip(axes.ravel(), picks, strict=False):
        image = ax.imshow(np.ma.masked_invalid(volume[:, :, z].T), origin="lower",
                          cmap=cmap_obj, vmin=vmin, vmax=vmax)  # fmt: skip
        ax.set_title(f"z={z}", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6)
    if title:
        fig.suptitle(title)
    return fig


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
    **plot_options,
) -> list[Path]:
    """Draw one voxel map to PNG files: on fsaverage when NSD's transforms are there, else slices.

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
    **plot_options
        ``cmap``, ``vmin``, ``vmax``, ``labels`` of :func:`plot_surface` /
        :func:`plot_volume_mosaic`.

    Returns
    -------
    paths : list of Path
    """
    folder = Path(folder)
    volume = unmask(values, voxel_indices, volume_shape)
    on_surface = (
        layout is not None
        and subject is not None
        and layout.transform(subject, "lh.white-to-fsaverage").exists()
    )
    if not on_surface:
        fig = plot_volume_mosaic(volume, title=name, **plot_options)
        return [save_figure(fig, folder / f"{name}.png")]
    lh, rh = volume_to_fsaverage(layout, subject, volume, order=0)
    return [
        save_figure(plot_surface(lh, rh, kind=kind, title=f"{name} ({kind})", **plot_options),
                    folder / f"{name}_{kind}.png")  # fmt: skip
        for kind in surfaces
    ]
