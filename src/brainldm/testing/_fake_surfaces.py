"""A subject's own FreeSurfer surfaces for the fake NSD (``nsddata/freesurfer/subjNN/surf``)."""

from __future__ import annotations

import os

import numpy as np


def write_patch(path: str | os.PathLike, vertices: np.ndarray, coords: np.ndarray,
                border: np.ndarray | None = None) -> None:  # fmt: skip
    """Write a FreeSurfer patch file in the binary format :func:`brainldm.nsd.read_patch` reads.

    Parameters
    ----------
    path : path-like
    vertices : ndarray of int, shape (n,)
        0-based native vertex of each point.
    coords : ndarray of shape (n, 3)
    border : ndarray of bool, shape (n,), optional
        Points on the patch's border (written with a negative code).
    """
    from brainldm._utils import atomic_path

    vertices = np.asarray(vertices, dtype=np.int64)
    code = vertices + 1
    if border is not None:
        code = np.where(border, -code, code)
    record = np.dtype([("code", ">i4"), ("xyz", ">f4", 3)])
    points = np.empty(len(vertices), dtype=record)
    points["code"], points["xyz"] = code, np.asarray(coords, dtype=np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(np.array([-1, len(vertices)], dtype=">i4").tobytes())
        fh.write(points.tobytes())


def write_subject_surfaces(layout, subject: int, surfaces: dict) -> None:
    """Write a subject's inflated surfaces, flat patches and sulcal depth.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
    surfaces : dict
        Per hemisphere (``"lh"``, ``"rh"``): ``{"coords": (n, 3), "faces": (m, 3),
        "flat_vertices": (k,), "flat_coords": (k, 3), "sulc": (n,)}``.
    """
    import nibabel as nib

    from brainldm._utils import atomic_path

    for hemi, s in surfaces.items():
        folder = layout.surface(subject, f"{hemi}.inflated").parent
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(layout.surface(subject, f"{hemi}.inflated")) as tmp:
            nib.freesurfer.write_geometry(str(tmp), np.asarray(s["coords"], dtype=float),
                                          np.asarray(s["faces"], dtype=np.int32))  # fmt: skip
        write_patch(layout.surface(subject, f"{hemi}.full.flat.patch.3d"), s["flat_vertices"],
                    s["flat_coords"])  # fmt: skip
        with atomic_path(layout.surface(subject, f"{hemi}.sulc")) as tmp:
            nib.freesurfer.write_morph_data(str(tmp), np.asarray(s["sulc"], dtype=np.float32))


def fsaverage5_surfaces() -> dict:
    """nilearn's bundled fsaverage5 as a subject's surfaces (:func:`write_subject_surfaces`).

    The inflated mesh, the flat mesh's vertices as the flat patch (those its
    faces use; the medial wall is cut away), and the sulcal depth.
    """
    try:
        from nilearn import datasets
    except ImportError as err:  # pragma: no cover - the maps extra
        raise ImportError("the fsaverage5 surfaces need nilearn: pip install 'brainldm[maps]'.") from err

    meshes = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data(mesh="fsaverage5", data_type="sulcal").data.parts
    out = {}
    for hemi, part in (("lh", "left"), ("rh", "right")):
        inflated, flat = meshes["inflated"].parts[part], meshes["flat"].parts[part]
        used = np.unique(flat.faces)
        out[hemi] = {"coords": inflated.coordinates, "faces": inflated.faces,
                     "flat_vertices": used, "flat_coords": flat.coordinates[used],
                     "sulc": np.asarray(sulc[part], dtype=np.float32)}  # fmt: skip
    return out
