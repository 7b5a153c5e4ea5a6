"""Per-voxel results back into volumes and onto cortical surfaces.

- :func:`unmask` puts a voxel vector back into the subject's grid through the
  voxel indices that extracted it (exact inverse of masking).
- :func:`volume_to_native` follows NSD's own transforms (nsdcode's logic):
  sample the volume at each native vertex's func1pt8 coordinates for the three
  cortical depths (layerB1-3) and average them; :func:`volume_to_fsaverage`
  then gathers by the native vertex nearest each fsaverage vertex
  (``white-to-fsaverage``).
- :func:`subject_meshes` reads the subject's own FreeSurfer surfaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainldm.nsd import TRANSFORM_DEPTHS, NSDLayout

#: Vertices per hemisphere of fsaverage5 (a prefix of fsaverage's 163,842).
FSAVERAGE5_VERTICES = 10242


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
        for depth in TRANSFORM_DEPTHS:
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

