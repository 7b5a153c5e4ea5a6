"""The fake NSD's per-subject files: ROI volumes, betas, surface data, transforms.

"early" voxels respond linearly to the appearance features, "ventral" voxels to
the caption features (and, with ``cortex="fsaverage5"``, "lateral" voxels too),
every other brain voxel to noise only. Betas are stored as
NSD stores them: int16 percent signal change × 300, HDF5 (X and Z swapped,
one voxel's trials per chunk), NIfTI and fsaverage MGH.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainldm._utils import atomic_path
from brainldm.nsd import BETA_SCALE, STREAMS_LABELS, NSDLayout, Trials
from brainldm.testing._fake_cortex import N_VERTICES, fsaverage5_geometry
from brainldm.testing._fake_design import _write_responses

_VOXEL_MM = 1.8


@dataclass
class _SubjectTruth:
    """What :func:`_write_subject` planted for one subject (see :class:`FakeNSD`)."""

    volumes: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    bad_voxels: tuple[int, np.ndarray]
    betas: np.ndarray | None
    fsaverage_betas: np.ndarray | None


def _roi_volumes(
    rng: np.random.Generator, shape: tuple[int, int, int], brain_voxels: int | None = None
) -> dict[str, np.ndarray]:
    """Brain mask, streams and nsdgeneral volumes with NSD's -1 / 0 / label values."""
    X, Y, Z = shape
    g = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij"), axis=-1)
    r = np.sqrt((g**2).sum(-1))
    brain = r <= 0.95
    if brain_voxels is not None and brain_voxels < brain.sum():  # the innermost ones
        brain = r <= np.sort(r.ravel())[brain_voxels - 1]
    cortex = brain & (r >= 0.45)  # a shell; the inside is "non-cortical"
    streams = np.full(shape, -1, dtype=np.int16)
    streams[cortex] = 0
    # Labels in the posterior half of the cortex, in bands along y (posterior -> anterior).
    labelled = cortex & (g[..., 1] < 0.1)
    order = np.argsort(g[..., 1][labelled] + 0.05 * rng.standard_normal(labelled.sum()))
    bands = np.array_split(order, len(STREAMS_LABELS))
    values = np.empty(labelled.sum(), dtype=np.int16)
    for label, band in zip(sorted(STREAMS_LABELS.values()), bands, strict=True):
        values[band] = label
    streams[labelled] = values
    nsdgeneral = np.where(cortex, 0, -1).astype(np.int16)
    nsdgeneral[np.isin(streams, [1, 2, 3, 5, 6])] = 1
    return {"brainmask": brain.astype(np.uint8), "streams": streams, "nsdgeneral": nsdgeneral}


def _write_nifti(
    path: Path, data: np.ndarray, zooms: Sequence[float], affine: np.ndarray | None = None
) -> None:
    import nibabel as nib

    if affine is None:  # the shell's: 1.8 mm voxels around the origin
        affine = np.diag([-_VOXEL_MM, _VOXEL_MM, _VOXEL_MM, 1.0])  # LPI-ish, like NSD
        affine[:3, 3] = -np.array(data.shape[:3]) * _VOXEL_MM / 2 * np.array([-1, 1, 1])
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms(tuple(zooms))
    img.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def _write_mgh(path: Path, data: np.ndarray) -> None:
    import nibabel as nib

    with atomic_path(path) as tmp:
        nib.save(nib.MGHImage(data.astype(np.float32), np.eye(4)), tmp)


def _write_transforms(
    layout: NSDLayout, subject: int, cortex: np.ndarray, n_native: int, rng: np.random.Generator
) -> None:
    """NSD's transforms: native vertices at cortex voxels (1-based coordinates, 3 depths)."""
    voxels = np.argwhere(cortex)
    path = layout.transform(subject, "lh.white-to-fsaverage")
    path.parent.mkdir(parents=True, exist_ok=True)
    for hemi in ("lh", "rh"):
        centres = voxels[rng.integers(len(voxels), size=n_native)].astype(np.float32)
        for depth in range(3):
            coords = centres + 1 + rng.uniform(-0.3, 0.3, centres.shape).astype(np.float32)
            _write_mgh(layout.transform(subject, f"{hemi}.func1pt8-to-layerB{depth + 1}"),
                       coords.reshape(-1, 1, 1, 3))  # fmt: skip
        nearest = rng.integers(1, n_native + 1, size=10242).astype(np.float32)  # 1-based
        _write_mgh(layout.transform(subject, f"{hemi}.white-to-fsaverage"),
                   nearest.reshape(-1, 1, 1))  # fmt: skip


def _write_layer_transforms(layout: NSDLayout, subject: int, layers: Mapping) -> None:
    """NSD's transforms of a subject whose native vertices are fsaverage5's own.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
    layers : mapping of {"lh", "rh"} to ndarray of shape (3, 10242, 3)
        1-based voxel coordinates of each vertex at layerB1, B2, B3.
    """
    layout.transform(subject, "lh.white-to-fsaverage").parent.mkdir(parents=True, exist_ok=True)
    identity = np.arange(1, N_VERTICES + 1, dtype=np.float32)  # 1-based
    for hemi, coords in layers.items():
        for depth in range(3):
            _write_mgh(layout.transform(subject, f"{hemi}.func1pt8-to-layerB{depth + 1}"),
                       coords[depth].reshape(-1, 1, 1, 3))  # fmt: skip
        _write_mgh(layout.transform(subject, f"{hemi}.white-to-fsaverage"),
                   identity.reshape(-1, 1, 1))  # fmt: skip


def _write_ctabs(layout: NSDLayout) -> None:
    """Write the colour tables of the ``streams`` and ``nsdgeneral`` atlases."""
    ctab_dir = layout.ctab("streams").parent
    ctab_dir.mkdir(parents=True, exist_ok=True)
    layout.ctab("streams").write_text(
        "0 Unknown\n" + "".join(f"{v} {k}\n" for k, v in STREAMS_LABELS.items())
    )
    layout.ctab("nsdgeneral").write_text("0 Unknown\n1 nsdgeneral\n")


def _write_subject(
    layout: NSDLayout,
    rng: np.random.Generator,
    s: int,
    tr: Trials,
    features: Mapping[str, np.ndarray],
    used: np.ndarray,
    *,
    n_sessions: int,
    T: int,
    volume_shape: tuple[int, int, int],
    n_fsaverage_vertices: int | None,
    n_native_vertices: int | None,
    noise_std: float,
    signal_std: float,
    formats: Sequence[str],
    keep_betas: bool,
    n_written_sessions: int | None = None,
    brain_voxels: int | None = None,
    cortex: str = "shell",
) -> _SubjectTruth:
    """Write one subject's ROIs, responses, transforms and betas, with planted weights.

    Parameters
    ----------
    layout : NSDLayout
    rng : numpy.random.Generator
    s : int
        Subject number.
    tr : Trials
        The subject's trials, chronological.
    features : mapping of str to ndarray of shape (len(used), n_features)
        Standardised ``"early"`` and ``"ventral"`` features, rows as ``used``.
    used : ndarray of int
        Sorted ids of every image shown.
    n_sessions, T : int
        Sessions of this subject, and trials per session.
    volume_shape, n_fsaverage_vertices, n_native_vertices, noise_std, signal_std, formats,
    keep_betas, n_written_sessions, brain_voxels, cortex
        As in :func:`write_fake_nsd`.

    Returns
    -------
    truth : _SubjectTruth
    """
    import h5py

    geometry = fsaverage5_geometry(volume_shape) if cortex == "fsaverage5" else None
    if geometry is None:
        vols, affine = _roi_volumes(rng, volume_shape, brain_voxels), None
        zooms = (_VOXEL_MM,) * 3
    else:
        vols, affine = geometry.volumes, geometry.affine
        zooms = (geometry.voxel_mm,) * 3
    _write_nifti(layout.brainmask(s), vols["brainmask"], zooms, affine)
    layout.roi(s, "streams").parent.mkdir(parents=True, exist_ok=True)
    for atlas in ("streams", "nsdgeneral"):
        _write_nifti(layout.roi(s, atlas), vols[atlas], zooms, affine)
    _write_responses(layout, s, tr, rng)
    if geometry is not None:
        _write_layer_transforms(layout, s, geometry.layers)
    elif n_native_vertices:
        _write_transforms(layout, s, vols["streams"] >= 0, n_native_vertices, rng)

    brain = vols["brainmask"].astype(bool)
    # ROI -> the features it responds to; on real cortex lateral voxels follow the
    # captions too, as higher visual cortex does in the paper (Figure 6).
    planted = {"early": "early", "ventral": "ventral"}
    if geometry is not None:
        planted["lateral"] = "ventral"
    W = {}
    for roi, source in planted.items():
        roi_mask = vols["streams"] == STREAMS_LABELS[roi]
        n_feat = features[source].shape[1]
        W[roi] = rng.standard_normal((n_feat, int(roi_mask.sum()))) * (signal_std / np.sqrt(n_feat))
    bad_session = 2 if n_sessions >= 2 else 1
    brain_ijk = np.argwhere(brain)
    early_ijk = np.argwhere(vols["streams"] == STREAMS_LABELS["early"])
    bad = np.concatenate([early_ijk[:1], brain_ijk[rng.choice(len(brain_ijk), 2)]])

    fs_map = None
    if "fsaverage" in formats and n_fsaverage_vertices:
        if geometry is not None and n_fsaverage_vertices <= N_VERTICES:
            # Each vertex (fsaverage5's first ones) samples its voxel at mid-depth.
            fs_map = np.concatenate([
                np.rint(geometry.layers[hemi][1, :n_fsaverage_vertices] - 1).astype(np.int64)
                for hemi in ("lh", "rh")
            ])  # fmt: skip
        else:
            # Each vertex samples one voxel of the cortex (a stand-in for the real
            # volume -> surface -> fsaverage mapping).
            cortex_ijk = np.argwhere(vols["streams"] >= 0)
            fs_map = cortex_ijk[rng.integers(len(cortex_ijk), size=2 * n_fsaverage_vertices)]
        fs_labels = vols["streams"][tuple(fs_map.T)]
        fs_general = vols["nsdgeneral"][tuple(fs_map.T)]
        label_dir = layout.fsaverage_roi("streams", "lh").parent
        label_dir.mkdir(parents=True, exist_ok=True)
        for h, hemi in enumerate(("lh", "rh")):
            sl = slice(h * n_fsaverage_vertices, (h + 1) * n_fsaverage_vertices)
            for atlas, values in (("streams", fs_labels), ("nsdgeneral", fs_general)):
                _write_mgh(
                    layout.fsaverage_roi(atlas, hemi),
                    values[sl].reshape(-1, 1, 1).astype(np.float32),
                )
    subject_betas = np.empty((len(tr), *volume_shape), dtype=np.float32) if keep_betas else None
    subject_fs = (
        np.empty((len(tr), 2 * n_fsaverage_vertices), dtype=np.float32)
        if keep_betas and fs_map is not None
        else None
    )
    feature_rows = np.searchsorted(used, tr.nsd_ids)
    for session in range(1, n_sessions + 1):
        rows = np.flatnonzero(tr.sessions == session)
        if n_written_sessions is not None and session > n_written_sessions:
            for fmt in ("hdf5", "nifti"):
                if fmt in formats:  # the same values as a written session
                    source = layout.betas(s, (session - 1) % n_written_sessions + 1, fmt)
                    layout.betas(s, session, fmt).unlink(missing_ok=True)
                    os.link(source, layout.betas(s, session, fmt))
            continue
        psc = np.zeros((T, *volume_shape), dtype=np.float32)
        psc[:, brain] = rng.normal(0, noise_std, (T, int(brain.sum())))
        for roi, source in planted.items():
            roi_mask = vols["streams"] == STREAMS_LABELS[roi]
            psc[:, roi_mask] += features[source][feature_rows[rows]] @ W[roi]
        if session == bad_session:
            psc[:, bad[:, 0], bad[:, 1], bad[:, 2]] = 0
        stored = np.clip(np.rint(psc * BETA_SCALE), -32768, 32767).astype(np.int16)
        if subject_betas is not None:
            subject_betas[rows] = stored / np.float32(BETA_SCALE)
        if "hdf5" in formats:
            path = layout.betas(s, session, "hdf5")
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
                # NSD's chunking: one voxel's 750 trials per chunk.
                f.create_dataset("betas", data=stored.transpose(0, 3, 2, 1), chunks=(T, 1, 1, 1))
        if "nifti" in formats:
            path = layout.betas(s, session, "nifti")
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_nifti(path, np.moveaxis(stored, 0, -1), (*zooms, 1.333), affine)
        if fs_map is not None:
            fs = (stored[:, fs_map[:, 0], fs_map[:, 1], fs_map[:, 2]] / BETA_SCALE).astype(
                np.float32
            )
            if session == bad_session:
                fs[:, :2] = np.nan
            if subject_fs is not None:
                subject_fs[rows] = fs
            for h, hemi in enumerate(("lh", "rh")):
                path = layout.betas(s, session, "fsaverage", hemi)
                path.parent.mkdir(parents=True, exist_ok=True)
                part = fs[:, h * n_fsaverage_vertices : (h + 1) * n_fsaverage_vertices]
                _write_mgh(path, part.T.reshape(-1, 1, 1, T))
    return _SubjectTruth(vols, W, (bad_session, bad), subject_betas, subject_fs)
