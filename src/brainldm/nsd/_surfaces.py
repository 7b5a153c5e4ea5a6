"""A subject's own cortical surfaces from NSD's FreeSurfer folder (``nsddata/freesurfer/subjNN``).

The native vertices of ``{hemi}.white``/``{hemi}.inflated`` are those NSD's
``func1pt8-to-layerB*`` transforms sample the volume at, so a volume result
sampled there is drawn on the subject's own inflated or flattened cortex, as
the paper's figures are. Surfaces are read with nibabel; the flat patch
(``{hemi}.full.flat.patch.3d``), which nibabel does not read, with
:func:`read_patch`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

#: File of each kind of surface, per hemisphere.
SURFACE_FILES = {"inflated": "{hemi}.inflated", "flat": "{hemi}.full.flat.patch.3d",
                 "white": "{hemi}.white", "sulc": "{hemi}.sulc"}  # fmt: skip


#: A flat patch's face is drawn if its longest edge is at most this many times the median edge.
FLAT_EDGE_FACTOR = 4.0


@dataclass(frozen=True)
class SurfaceMesh:
    """One hemisphere's mesh and which native vertices it holds.

    Attributes
    ----------
    coords : ndarray of shape (n_mesh_vertices, 3)
    faces : ndarray of int, shape (n_faces, 3)
        Into ``coords``.
    vertices : ndarray of int, shape (n_mesh_vertices,)
        The native vertex of each mesh vertex (all of them for a whole surface,
        a subset for a flat patch).
    """

    coords: np.ndarray
    faces: np.ndarray
    vertices: np.ndarray


def read_patch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a FreeSurfer patch file (``*.patch.3d``, the "new" binary format).

    The file is big-endian: int32 −1, int32 n, then n records of an int32 vertex
    code (vertex + 1, negated on the patch's border) and three float32 coordinates.

    Returns
    -------
    vertices : ndarray of int, shape (n,)
        0-based native vertex of each patch point.
    coords : ndarray of float32, shape (n, 3)
    """
    data = open(path, "rb").read()
    head = np.frombuffer(data[:8], dtype=">i4") if len(data) >= 8 else np.zeros(0)
    if len(head) < 2 or head[0] != -1:
        raise ValueError(f"{path} is not a FreeSurfer patch in the binary format this reader "
                         "knows (it starts with int32 -1).")  # fmt: skip
    n = int(head[1])
    record = np.dtype([("code", ">i4"), ("xyz", ">f4", 3)])
    if len(data) < 8 + n * record.itemsize:
        raise ValueError(f"{path} is truncated: {n} points announced, "
                         f"{(len(data) - 8) // record.itemsize} present.")  # fmt: skip
    points = np.frombuffer(data[8:8 + n * record.itemsize], dtype=record)
    code = points["code"].astype(np.int64)
    vertices = np.where(code < 0, -code, code) - 1
    return vertices, points["xyz"].astype(np.float32)


def has_subject_surfaces(layout, subject: int) -> bool:
    """Whether NSD's FreeSurfer folder holds the subject's inflated surfaces and flat patches."""
    return all(layout.surface(subject, SURFACE_FILES[kind].format(hemi=hemi)).exists()
               for kind in ("inflated", "flat") for hemi in ("lh", "rh"))  # fmt: skip


def load_subject_surface(layout, subject: int, hemi: str, kind: str) -> SurfaceMesh:
    """The subject's inflated surface or flat patch of one hemisphere.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
    hemi : {"lh", "rh"}
    kind : {"inflated", "flat", "white"}
        A flat patch's faces are the surface's faces whose three vertices are
        in the patch, less those stretched across a cut (an edge longer than
        :data:`FLAT_EDGE_FACTOR` times the median edge).

    Returns
    -------
    mesh : SurfaceMesh
    """
    import nibabel as nib

    from brainldm._utils import check_option

    check_option("hemi", hemi, ("lh", "rh"))
    check_option("kind", kind, ("inflated", "flat", "white"))
    whole = "white" if kind == "white" else "inflated"
    coords, faces = nib.freesurfer.read_geometry(
        layout.require(layout.surface(subject, SURFACE_FILES[whole].format(hemi=hemi))))
    if kind != "flat":
        return SurfaceMesh(coords.astype(np.float32), faces.astype(np.int64),
                           np.arange(len(coords)))  # fmt: skip
    vertices, flat = read_patch(layout.require(
        layout.surface(subject, SURFACE_FILES["flat"].format(hemi=hemi))))
    if vertices.size and (vertices.min() < 0 or vertices.max() >= len(coords)):
        raise ValueError(f"the flat patch of {hemi} names vertices outside the surface's "
                         f"{len(coords)}.")  # fmt: skip
    position = np.full(len(coords), -1, dtype=np.int64)
    position[vertices] = np.arange(len(vertices))
    kept = position[faces[(position[faces] >= 0).all(axis=1)]]
    # Faces across a relaxation cut have all three vertices in the patch but lie
    # stretched over the cut once flattened: drop faces with an edge far longer than usual.
    edges = np.stack([np.linalg.norm(flat[kept[:, i]] - flat[kept[:, (i + 1) % 3]], axis=1)
                      for i in range(3)], axis=1)  # fmt: skip
    if len(edges):
        kept = kept[edges.max(axis=1) <= FLAT_EDGE_FACTOR * np.median(edges)]
    return SurfaceMesh(flat, kept, vertices)


def load_subject_sulc(layout, subject: int, hemi: str) -> np.ndarray | None:
    """Sulcal depth per native vertex (``{hemi}.sulc``), or None when it is not there."""
    import nibabel as nib

    path = layout.surface(subject, SURFACE_FILES["sulc"].format(hemi=hemi))
    return np.asarray(nib.freesurfer.read_morph_data(path), dtype=float) if path.exists() else None
