"""A fake subject's geometry taken from real cortex: nilearn's bundled fsaverage5.

Used by :func:`brainldm.testing.write_fake_nsd` with ``cortex="fsaverage5"``.
The subject *is* fsaverage5: its native vertices are fsaverage5's 10,242
vertices per hemisphere, so the fake ``white-to-fsaverage`` transform is the
identity, and maps drawn through NSD's transforms land on real anatomy.

Geometry (all coordinates in fsaverage's MNI-like millimetres: x left → right,
y posterior → anterior, z inferior → superior):

- Grid: the bounding box of both hemispheres' surfaces, centred in ``volume_shape``
  with a margin of one voxel, at one isotropic voxel size (the largest of the
  three axes' needs). The affine (``_grid_affine``) is NSD's orientation, x
  flipped, and is the one written into every NIfTI file.
- Cortex: the voxels holding a point of the ribbon, i.e. a vertex moved 0, 1/4,
  2/4, 3/4 or all the way from the white to the pial surface.
- Brain mask: each hemisphere's pial surface, voxelised and filled, plus the cortex.
- Streams labels: each ribbon point gets a label from where its vertex lies
  (:func:`streams_labels`); a cortex voxel takes its points' most frequent label
  (0 = cortex outside the streams atlas).
- Transforms: ``layerB1``, ``layerB2``, ``layerB3`` are the points 3/4, 2/4 and
  1/4 of the way from white to pial (B1 nearest the pial surface, as in NSD).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainldm.nsd import STREAMS_LABELS

#: fsaverage5's vertices per hemisphere (the fake subject's native vertices).
N_VERTICES = 10242
HEMIS = ("lh", "rh")
#: Fractions of the way from white to pial of layerB1, layerB2, layerB3.
LAYER_DEPTHS = (0.75, 0.5, 0.25)
_RIBBON_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
_MARGIN = 1  # empty voxels on each side of the brain's bounding box
#: Streams labels inside the fake nsdgeneral (as the shell's).
NSDGENERAL_STREAMS = ("early", "midventral", "midlateral", "ventral", "lateral")


@dataclass
class CortexGeometry:
    """A fake subject placed on fsaverage5 (see the module docstring).

    Attributes
    ----------
    volumes : dict of str to ndarray of shape (X, Y, Z)
        ``brainmask`` (uint8 0/1), ``streams`` and ``nsdgeneral`` (int16, NSD's
        -1 outside cortex, 0 unlabelled cortex, else the label).
    affine : ndarray of shape (4, 4)
        0-based voxel (i, j, k) → millimetres.
    voxel_mm : float
        Isotropic voxel size.
    layers : dict of str to ndarray of shape (3, 10242, 3)
        Per hemisphere, 1-based voxel coordinates of each vertex at layerB1, B2, B3.
    """

    volumes: dict[str, np.ndarray]
    affine: np.ndarray
    voxel_mm: float
    layers: dict[str, np.ndarray]


def load_fsaverage5_surfaces() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """White and pial surfaces of nilearn's bundled fsaverage5 (no download).

    Returns
    -------
    surfaces : dict of {"lh", "rh"} to (white, pial, faces)
        ``white`` and ``pial``: vertex coordinates in millimetres, ndarrays of shape
        (10242, 3); ``faces``: ndarray of int, shape (20480, 3), shared by both.
    """
    try:
        from nilearn import datasets
    except ImportError as err:
        raise ImportError(
            "cortex='fsaverage5' needs nilearn's bundled fsaverage5 meshes; install "
            "brainldm's 'maps' extra: pip install 'brainldm[maps]'."
        ) from err
    mesh = datasets.load_fsaverage("fsaverage5")
    return {
        hemi: (
            np.asarray(mesh["white_matter"].parts[part].coordinates, dtype=float),
            np.asarray(mesh["pial"].parts[part].coordinates, dtype=float),
            np.asarray(mesh["pial"].parts[part].faces, dtype=np.int64),
        )
        for hemi, part in zip(HEMIS, ("left", "right"), strict=True)
    }


def streams_labels(xyz: np.ndarray) -> np.ndarray:
    """NSD streams label of points on fsaverage's cortex, by simple anatomical rules.

    Coordinates are fsaverage's (MNI-like) millimetres; ``ax`` = |x|, the distance
    from the midline. Rules, first match wins:

    - early (V1-V3): the occipital pole, y < -88, or the medial occipital lobe
      around the calcarine sulcus, y < -66, ax < 24, -14 < z < 28;
    - the mid bands, the rest of y < -74: midparietal if z >= 22, midventral if
      z < -4, else midlateral;
    - ventral: ventral occipito-temporal cortex, -74 <= y < -28, z < -8, ax >= 18;
    - lateral: lateral occipito-temporal cortex, -74 <= y < -36, ax >= 34, z < 24;
    - parietal: dorsal posterior cortex, -74 <= y < -36, z >= 30, ax >= 18;
    - 0 elsewhere.

    Parameters
    ----------
    xyz : ndarray of shape (n_points, 3)

    Returns
    -------
    labels : ndarray of int16, shape (n_points,)
    """
    x, y, z = np.asarray(xyz, dtype=float).T
    ax = np.abs(x)
    L = STREAMS_LABELS
    rules = [
        ("early", (y < -88) | ((y < -66) & (ax < 24) & (z > -14) & (z < 28))),
        ("midparietal", (y < -74) & (z >= 22)),
        ("midventral", (y < -74) & (z < -4)),
        ("midlateral", y < -74),
        ("ventral", (y < -28) & (z < -8) & (ax >= 18)),
        ("lateral", (y < -36) & (ax >= 34) & (z < 24)),
        ("parietal", (y < -36) & (z >= 30) & (ax >= 18)),
    ]
    labels = np.zeros(len(x), dtype=np.int16)
    done = np.zeros(len(x), dtype=bool)
    for name, hit in rules:
        labels[hit & ~done] = L[name]
        done |= hit
    return labels


def _grid_affine(points: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, float]:
    """Affine placing the points' bounding box in the middle of the grid, and its voxel size."""
    lo, hi = points.min(0), points.max(0)
    room = np.array(shape, dtype=float) - 1 - 2 * _MARGIN
    if (room < 1).any():
        raise ValueError(f"volume_shape={shape} is too small for cortex='fsaverage5'.")
    mm = float(((hi - lo) / room).max())
    affine = np.diag([-mm, mm, mm, 1.0])  # x flipped, like NSD (and the shell's affine)
    centre_ijk = (np.array(shape, dtype=float) - 1) / 2
    affine[:3, 3] = (lo + hi) / 2 - affine[:3, :3] @ centre_ijk
    return affine, mm


def _to_ijk(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Millimetres (n, 3) → continuous 0-based voxel coordinates (n, 3)."""
    inv = np.linalg.inv(affine)
    return points @ inv[:3, :3].T + inv[:3, 3]


def _filled_surface(
    vertices: np.ndarray, faces: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int]
) -> np.ndarray:
    """Voxels inside a closed surface: its triangles sampled finely, then the holes filled."""
    from scipy.ndimage import binary_closing, binary_fill_holes

    ijk = _to_ijk(vertices, affine)
    tri = ijk[faces]  # (n_faces, 3 corners, 3)
    longest = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max()
    n = int(np.ceil(longest * 4)) + 1  # points a quarter voxel apart along each edge
    a, b = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = a + b <= n
    w = np.stack([a[keep], b[keep], n - a[keep] - b[keep]], axis=1) / n  # barycentric
    shell = np.zeros(shape, dtype=bool)
    for chunk in np.array_split(np.arange(len(tri)), max(1, len(tri) // 2000)):
        pts = np.einsum("pc,fcd->fpd", w, tri[chunk]).reshape(-1, 3)
        idx = np.clip(np.rint(pts).astype(np.int64), 0, np.array(shape) - 1)
        shell[tuple(idx.T)] = True
    return binary_fill_holes(binary_closing(shell, iterations=1) | shell)


def fsaverage5_geometry(volume_shape: tuple[int, int, int]) -> CortexGeometry:
    """Build the fake subject's volumes and transforms from fsaverage5 (module docstring).

    Parameters
    ----------
    volume_shape : (X, Y, Z)

    Returns
    -------
    geometry : CortexGeometry
    """
    shape = tuple(int(n) for n in volume_shape)
    surfaces = load_fsaverage5_surfaces()
    affine, mm = _grid_affine(
        np.concatenate([np.concatenate([w, p]) for w, p, _ in surfaces.values()]), shape
    )
    brain = np.zeros(shape, dtype=bool)
    votes = np.zeros((int(np.prod(shape)), max(STREAMS_LABELS.values()) + 1), dtype=np.int64)
    layers = {}
    for hemi in HEMIS:
        white, pial, faces = surfaces[hemi]
        brain |= _filled_surface(pial, faces, affine, shape)
        for depth in _RIBBON_DEPTHS:
            point = white + depth * (pial - white)
            flat = np.ravel_multi_index(tuple(np.rint(_to_ijk(point, affine)).astype(int).T), shape)
            np.add.at(votes, (flat, streams_labels(point)), 1)
        layers[hemi] = np.stack(
            [_to_ijk(white + d * (pial - white), affine) + 1 for d in LAYER_DEPTHS]
        ).astype(np.float32)  # NSD's coordinates are 1-based
    cortex = (votes.sum(1) > 0).reshape(shape)
    streams = np.full(shape, -1, dtype=np.int16)
    streams[cortex] = votes.argmax(1).reshape(shape)[cortex]
    nsdgeneral = np.where(cortex, 0, -1).astype(np.int16)
    nsdgeneral[np.isin(streams, [STREAMS_LABELS[r] for r in NSDGENERAL_STREAMS])] = 1
    volumes = {
        "brainmask": (brain | cortex).astype(np.uint8),
        "streams": streams,
        "nsdgeneral": nsdgeneral,
    }
    return CortexGeometry(volumes, affine, mm, layers)
