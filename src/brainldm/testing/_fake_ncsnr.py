"""The fake NSD's data quality: ``ncsnr`` files computed from the betas it wrote.

NSD ships each subject's noise-ceiling SNR beside the betas (``ncsnr.nii.gz``
on the func1pt8mm grid, ``{lh,rh}.ncsnr.mgh`` on fsaverage).
:func:`_write_ncsnr` reads the fake's betas back from disk and computes them
with :func:`brainldm.nsd.noise_ceiling_snr`, NSD's definition, so the planted
signal voxels ("early", "ventral") get a high ncsnr and noise-only voxels one
near 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from brainldm._utils import atomic_path
from brainldm.nsd import NSD_MIN_REPEATS, NSDLayout, Trials, load_betas, noise_ceiling_snr

logger = logging.getLogger(__name__)

# Bytes of float32 betas read at once (a block of voxels × every trial).
_BLOCK_BYTES = 64 * 2**20


def _min_repeats(nsd_ids: np.ndarray) -> int | None:
    """NSD's 3 trials per image; 2 when no image has 3 (a fake with few sessions)."""
    most = int(np.unique(nsd_ids, return_counts=True)[1].max(initial=0))
    return NSD_MIN_REPEATS if most >= NSD_MIN_REPEATS else (2 if most == 2 else None)


def _volume_ncsnr(layout: NSDLayout, subject: int, fmt: str, tr: Trials, repeats: int):
    """The ncsnr of every voxel of the grid (0 outside the brain), read by blocks of voxels."""
    import nibabel as nib

    brain_img = nib.load(layout.require(layout.brainmask(subject)))
    brain = np.asarray(brain_img.dataobj) > 0
    flat = np.flatnonzero(brain)  # C order, as the columns of load_betas
    out = np.zeros(brain.size, dtype=np.float32)
    step = max(1, _BLOCK_BYTES // (4 * max(1, len(tr))))
    for start in range(0, len(flat), step):
        block = np.zeros(brain.size, dtype=bool)
        block[flat[start : start + step]] = True
        betas = load_betas(layout, subject, sorted(set(tr.sessions.tolist())),
                           block.reshape(brain.shape), fmt)  # fmt: skip
        out[flat[start : start + step]] = noise_ceiling_snr(betas, tr.nsd_ids, tr.sessions,
                                                            repeats)  # fmt: skip
    return out.reshape(brain.shape), brain_img


def _write_ncsnr(
    layout: NSDLayout,
    subject: int,
    tr: Trials,
    formats: Sequence[str],
    n_written_sessions: int | None = None,
) -> None:
    """Write ``ncsnr.nii.gz`` (and ``{lh,rh}.ncsnr.mgh``) of one subject from its betas on disk.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
    tr : Trials
        The subject's trials, chronological (the rows of its beta files).
    formats : sequence of {"hdf5", "nifti", "fsaverage"}
        The beta copies written: the volume ncsnr is computed from the HDF5 (else
        NIfTI) betas, the fsaverage one from the fsaverage betas.
    n_written_sessions : int, optional
        As in :func:`~brainldm.testing.write_fake_nsd`: the later sessions repeat
        the written ones, so no ncsnr is written (a benchmark's data, left without
        data quality as older NSD downloads are).
    """
    import nibabel as nib

    repeats = _min_repeats(tr.nsd_ids)
    if n_written_sessions is not None or repeats is None:
        logger.info("subject %d: no ncsnr written (no image shown twice, or repeated "
                    "sessions)", subject)  # fmt: skip
        return
    volume_fmt = next((f for f in ("hdf5", "nifti") if f in formats), None)
    if volume_fmt is not None:
        ncsnr, brain_img = _volume_ncsnr(layout, subject, volume_fmt, tr, repeats)
        img = nib.Nifti1Image(ncsnr, brain_img.affine)
        img.header.set_zooms(brain_img.header.get_zooms()[:3])
        path = layout.ncsnr(subject, volume_fmt)
        with atomic_path(path) as tmp:
            nib.save(img, tmp)
    if "fsaverage" in formats and layout.betas(subject, 1, "fsaverage").exists():
        betas = load_betas(layout, subject, sorted(set(tr.sessions.tolist())), None, "fsaverage")
        ncsnr = noise_ceiling_snr(betas, tr.nsd_ids, tr.sessions, repeats)
        n_lh = nib.load(layout.betas(subject, 1, "fsaverage", "lh")).shape[0]
        for hemi, part in (("lh", ncsnr[:n_lh]), ("rh", ncsnr[n_lh:])):
            with atomic_path(layout.ncsnr(subject, "fsaverage", hemi)) as tmp:
                nib.save(nib.MGHImage(part.reshape(-1, 1, 1), np.eye(4)), tmp)
