"""A subject's betas, split into train (single trials) and test (shared images, averaged).

This is the paper's data preparation (seed_code.md §2) as one function,
:func:`prepare_subject`, whose result is written once and re-used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainldm._utils import check_option
from brainldm.nsd._betas import check_session_trials, load_betas
from brainldm.nsd._design import load_expdesign
from brainldm.nsd._layout import NSDLayout
from brainldm.nsd._rois import load_roi_mask
from brainldm.nsd._trials import (
    ROW_ORDERS,
    RowOrder,
    average_repeats,
    check_subject,
    load_trials,
    resolve_sessions,
    split_shared,
)

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SubjectSplit:
    """One subject's ROI betas, split as in the paper.

    Attributes
    ----------
    subject : int
    rois : tuple of str
        ROI names, keys of the beta dicts.
    atlas : str
    sessions : tuple of int
        Sessions used (numbered from 1).
    split : str
        Preset name, or ``"custom"`` for explicit sessions.
    order : {"first_presentation", "sorted"}
        Row order of the test images.
    train_betas : dict of str to ndarray of shape (n_train_trials, n_voxels)
        Single-trial betas of the non-shared images, chronological, percent signal change.
    train_nsd_ids : ndarray of int, shape (n_train_trials,)
    test_betas : dict of str to ndarray of shape (n_test_images, n_voxels)
        Betas of the shared images averaged over their repeats (1-3).
    test_nsd_ids : ndarray of int, shape (n_test_images,)
    test_n_repeats : ndarray of int, shape (n_test_images,)
    voxel_indices : dict of str to ndarray of shape (n_voxels, 3)
        (x, y, z) voxel of each column, for putting results back into a volume.
    affine : ndarray of shape (4, 4)
    volume_shape : tuple of int
        (X, Y, Z) grid of the subject.
    meta : dict
        Settings that produced the split, and the package version.
    """

    subject: int
    rois: tuple[str, ...]
    atlas: str
    sessions: tuple[int, ...]
    split: str
    order: str
    train_betas: dict[str, np.ndarray]
    train_nsd_ids: np.ndarray
    test_betas: dict[str, np.ndarray]
    test_nsd_ids: np.ndarray
    test_n_repeats: np.ndarray
    voxel_indices: dict[str, np.ndarray]
    affine: np.ndarray
    volume_shape: tuple[int, ...]
    meta: dict = field(default_factory=dict)

    def summary(self) -> str:
        """A few lines: sessions, trial and image counts, voxels per ROI."""
        rois = ", ".join(f"{r} {self.train_betas[r].shape[1]} voxels" for r in self.rois)
        reps = np.bincount(self.test_n_repeats, minlength=4)[1:].tolist()
        return (
            f"subj{self.subject:02d}: {len(self.sessions)} sessions ({self.split}); "
            f"train {len(self.train_nsd_ids)} trials of {len(np.unique(self.train_nsd_ids))} "
            f"images; test {len(self.test_nsd_ids)} shared images averaged over "
            f"1/2/3 repeats: {reps}; {rois}"
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write to HDF5 ``path`` plus a JSON sidecar ``path.json``, atomically."""
        import h5py

        from brainldm._utils import atomic_path, write_json_atomic

        path = Path(path)
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f["train_nsd_ids"] = self.train_nsd_ids
                f["test_nsd_ids"] = self.test_nsd_ids
                f["test_n_repeats"] = self.test_n_repeats
                f["affine"] = self.affine
                for roi in self.rois:
                    g = f.create_group(f"rois/{roi}")
                    g["train_betas"] = self.train_betas[roi]
                    g["test_betas"] = self.test_betas[roi]
                    g["voxel_indices"] = self.voxel_indices[roi]
        write_json_atomic(_sidecar(path), self._sidecar_dict())
        return path

    def _sidecar_dict(self) -> dict:
        return {
            "format_version": _FORMAT_VERSION,
            "subject": self.subject,
            "rois": list(self.rois),
            "atlas": self.atlas,
            "sessions": list(self.sessions),
            "split": self.split,
            "order": self.order,
            "volume_shape": list(self.volume_shape),
            **self.meta,
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> SubjectSplit:
        """Read what :meth:`save` wrote."""
        import h5py

        path = Path(path)
        meta = json.loads(_sidecar(path).read_text())
        rois = tuple(meta["rois"])
        with h5py.File(path, "r") as f:
            return cls(
                subject=int(meta["subject"]),
                rois=rois,
                atlas=meta["atlas"],
                sessions=tuple(meta["sessions"]),
                split=meta["split"],
                order=meta["order"],
                train_betas={r: f[f"rois/{r}/train_betas"][()] for r in rois},
                train_nsd_ids=f["train_nsd_ids"][()],
                test_betas={r: f[f"rois/{r}/test_betas"][()] for r in rois},
                test_nsd_ids=f["test_nsd_ids"][()],
                test_n_repeats=f["test_n_repeats"][()],
                voxel_indices={r: f[f"rois/{r}/voxel_indices"][()] for r in rois},
                affine=f["affine"][()],
                volume_shape=tuple(meta["volume_shape"]),
                meta={k: meta[k] for k in ("fmt", "zscore", "package_version") if k in meta},
            )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _checked_inputs(layout, subject, rois, atlas, split, sessions, fmt):
    """Check every file a split reads, from headers; return what the split needs.

    Returns ``(subject, sessions, design, trials, masks)``; raises naming the
    file or setting at fault before any beta is read.
    """
    check_option("fmt", fmt, ("hdf5", "nifti"))
    subject = check_subject(layout, subject)
    chosen = resolve_sessions(layout.sessions(subject, fmt), sessions, split)
    design = load_expdesign(layout)
    trials = load_trials(layout, subject, chosen, fmt=fmt, design=design)
    masks = {roi: load_roi_mask(layout, subject, roi, atlas) for roi in rois}
    grid = next(iter(masks.values())).mask.shape
    for session in chosen:
        n_expected = int((trials.sessions == session).sum())
        check_session_trials(layout, layout.betas(subject, session, fmt), fmt, n_expected, grid)
    return subject, chosen, design, trials, masks


def check_split_inputs(
    layout: NSDLayout,
    subject: int,
    rois: Sequence[str] = ("early", "ventral"),
    atlas: str = "streams",
    split: str = "takagi2023",
    sessions: Sequence[int] | None = None,
    fmt: str = "hdf5",
) -> None:
    """Check, without reading any beta, that :func:`split_subject` can read its inputs.

    Reads the design, the trial table and the ROI volumes, and the header of
    every beta file (it opens, holds a ``betas`` array on the ROI grid, with as
    many trials as ``responses.tsv`` lists for its session). Parameters as
    :func:`split_subject`.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the missing or unreadable file, or the invalid setting.
    """
    rois = (rois,) if isinstance(rois, str) else tuple(rois)
    _checked_inputs(layout, subject, rois, atlas, split, sessions, fmt)


def split_subject(
    layout: NSDLayout,
    subject: int,
    rois: Sequence[str] = ("early", "ventral"),
    atlas: str = "streams",
    split: str = "takagi2023",
    sessions: Sequence[int] | None = None,
    fmt: str = "hdf5",
    zscore: bool = False,
    order: RowOrder = "first_presentation",
    progress: bool = False,
) -> SubjectSplit:
    """Load a subject's ROI betas and split them: train single trials, test averages.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
        NSD subject (1 for ``subj01``).
    rois : sequence of str
        ROI label names of ``atlas``; each is loaded separately (early → z and
        ventral → c in the paper).
    atlas : str
        ``"streams"`` (the paper) or ``"nsdgeneral"`` or another volume atlas.
    split : {"takagi2023", "modern"}
        Session preset (see :data:`brainldm.nsd.SPLIT_PRESETS`); ignored when
        ``sessions`` is given.
    sessions : sequence of int, optional
        Explicit sessions, numbered from 1.
    fmt : {"hdf5", "nifti"}
        Which copy of the volume betas to read.
    zscore : bool
        Z-score each voxel within each session (not done in the paper).
    order : {"first_presentation", "sorted"}
        Test image order: the seed's first-presentation order, or by ``nsd_id``.
    progress : bool
        Progress bars over sessions.

    Returns
    -------
    split : SubjectSplit
    """
    from brainldm import __version__

    check_option("order", order, ROW_ORDERS)
    rois = (rois,) if isinstance(rois, str) else tuple(rois)
    subject, chosen, design, trials, masks = _checked_inputs(
        layout, subject, rois, atlas, split, sessions, fmt
    )
    is_test = split_shared(trials.nsd_ids, design.shared_nsd_ids)
    # Destination row of each trial: train rows first (chronological), then test rows.
    n_train = int((~is_test).sum())
    dest = np.empty(len(trials), dtype=np.int64)
    dest[~is_test] = np.arange(n_train)
    dest[is_test] = n_train + np.arange(int(is_test.sum()))
    test_ids_single = trials.nsd_ids[is_test]

    train_betas, test_betas, voxel_indices = {}, {}, {}
    affine, volume_shape = np.eye(4), ()
    test_ids = n_repeats = np.empty(0, dtype=np.int64)
    for roi, mask in masks.items():
        affine, volume_shape = mask.affine, mask.mask.shape
        betas = np.empty((len(trials), mask.n_voxels), dtype=np.float32)
        load_betas(
            layout, subject, chosen, mask, fmt, zscore, out=betas, rows=dest, progress=progress
        )
        mean, test_ids, n_repeats = average_repeats(betas[n_train:], test_ids_single, order)
        train_betas[roi] = betas[:n_train]
        test_betas[roi] = mean.astype(np.float32, copy=False)
        voxel_indices[roi] = mask.voxel_indices
    result = SubjectSplit(
        subject=subject,
        rois=rois,
        atlas=atlas,
        sessions=tuple(chosen),
        split=split if sessions is None else "custom",
        order=order,
        train_betas=train_betas,
        train_nsd_ids=trials.nsd_ids[~is_test],
        test_betas=test_betas,
        test_nsd_ids=test_ids,
        test_n_repeats=n_repeats,
        voxel_indices=voxel_indices,
        affine=affine,
        volume_shape=tuple(int(s) for s in volume_shape),
        meta={"fmt": fmt, "zscore": bool(zscore), "package_version": __version__},
    )
    logger.info("%s", result.summary())
    return result


def prepare_subject(
    layout: NSDLayout,
    subject: int,
    out_dir: str | os.PathLike,
    rois: Sequence[str] = ("early", "ventral"),
    atlas: str = "streams",
    split: str = "takagi2023",
    sessions: Sequence[int] | None = None,
    fmt: str = "hdf5",
    zscore: bool = False,
    order: RowOrder = "first_presentation",
    progress: bool = False,
) -> tuple[SubjectSplit, Path]:
    """:func:`split_subject`, written once to ``out_dir`` and re-used when asked again.

    The file name carries a hash of the settings, so a different choice of ROIs,
    sessions, format, z-scoring or order writes a new file instead of re-using one.

    Returns
    -------
    split : SubjectSplit
    path : Path
        The HDF5 file (its JSON sidecar is ``path`` + ``.json``).
    """
    rois = (rois,) if isinstance(rois, str) else tuple(rois)
    settings = {
        "root": str(layout.root.resolve()),
        "subject": subject,
        "rois": list(rois),
        "atlas": atlas,
        "split": split,
        "sessions": None if sessions is None else [int(s) for s in sessions],
        "fmt": fmt,
        "zscore": zscore,
        "order": order,
        "format_version": _FORMAT_VERSION,
    }
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    path = Path(out_dir) / f"subj{subject:02d}_split-{split}_{key}.h5"
    if path.exists() and _sidecar(path).exists():
        logger.info("re-using %s", path)
        return SubjectSplit.load(path), path
    result = split_subject(
        layout, subject, rois, atlas, split, sessions, fmt, zscore, order, progress
    )
    return result, result.save(path)
