"""A subject's betas, split into train (single trials) and test (shared images, averaged).

This is the paper's data preparation (seed_code.md §2) as one function,
:func:`prepare_subject`, whose result is written once and re-used.

Each session's betas are read once, with the union of every voxel set's mask,
and each set's columns are sliced from that block. :func:`prepare_subject`
writes the train rows of each session straight into the HDF5 file, so its peak
memory is one session × the union's voxels plus the test trials (shared
images), whose repeats are averaged at the end. :func:`split_subject` runs the
same code into arrays in memory.

File format (version 2): an HDF5 file with ``train_nsd_ids``, ``test_nsd_ids``,
``test_n_repeats``, ``affine`` and, per voxel set, ``rois/{name}/train_betas``,
``rois/{name}/test_betas`` (float32, chunked (64 rows, 1024 voxels) for
reading blocks of voxel columns), ``rois/{name}/voxel_indices`` and, when NSD's
``ncsnr`` file was there, ``rois/{name}/ncsnr`` (each voxel's noise-ceiling SNR;
files without it load with the data quality absent); settings in the JSON
sidecar ``{file}.json``. Version-1 files (unchunked) load too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brainldm._utils import check_option
from brainldm.nsd._betas import betas_file_shape, check_session_trials, load_betas
from brainldm.nsd._design import load_expdesign
from brainldm.nsd._layout import BETA_FORMATS, NSDLayout
from brainldm.nsd._ncsnr import load_ncsnr, median_ncsnr
from brainldm.nsd._rois import (
    VoxelSet,
    fsaverage_voxel_set,
    load_voxel_set,
    normalise_voxel_set,
    voxel_set_name,
)
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

# Version 2: union read, streamed train rows, chunked betas, voxel-set names and specs.
_FORMAT_VERSION = 2

# Chunk of the beta datasets: a block of rows × a block of voxel columns (256 KiB float32).
_CHUNK_ROWS = 64
_CHUNK_VOXELS = 1024
# Bytes per block when copying betas into a file (bounds the extra memory of a save).
_COPY_BYTES = 64 * 2**20


@dataclass(frozen=True)
class StoredBetas:
    """One beta array of a prepared split file, read from disk on each access.

    Picklable: it holds only the file's path and the dataset's name, shape and
    dtype, and opens the file on every read, so workers sharing the filesystem
    can read their own blocks.

    Attributes
    ----------
    path : str
        Absolute path of the HDF5 file.
    name : str
        Dataset inside it, e.g. ``"/rois/brain/train_betas"``.
    shape : tuple of int
        (n_rows, n_voxels).
    dtype : numpy.dtype

    Examples
    --------
    >>> block = stored.columns(0, 1024)  # doctest: +SKIP
    >>> everything = np.asarray(stored)  # doctest: +SKIP
    """

    path: str
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions (2)."""
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        """Read ``dataset[key]`` (h5py indexing: slices, ``()``, increasing index lists)."""
        import h5py

        with h5py.File(self.path, "r") as f:
            return np.asarray(f[self.name][key])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError(
                "StoredBetas reads from disk, so it cannot give an array without a copy "
                "(copy=False); use np.asarray(stored)."
            )
        values = self[()]
        return values if dtype is None else values.astype(dtype, copy=False)

    def columns(self, start: int, stop: int) -> np.ndarray:
        """Read voxel columns ``start:stop`` of every row.

        Returns
        -------
        block : ndarray of shape (n_rows, stop - start)
        """
        n = self.shape[1]
        if not 0 <= start <= stop <= n:
            raise ValueError(f"columns({start}, {stop}) is outside 0..{n} for {self.name}.")
        return self[:, start:stop]

    def __repr__(self) -> str:
        return f"StoredBetas({self.path!r}, {self.name!r}, shape={self.shape}, dtype={self.dtype})"


@dataclass(frozen=True)
class SubjectSplit:
    """One subject's betas of one or more voxel sets, split as in the paper.

    Attributes
    ----------
    subject : int
    rois : tuple of str
        Voxel-set names (:func:`brainldm.nsd.voxel_set_name`), keys of the beta dicts.
    atlas : str
        Atlas of the label names.
    sessions : tuple of int
        Sessions used (numbered from 1).
    split : str
        Preset name, or ``"custom"`` for explicit sessions.
    order : {"first_presentation", "sorted"}
        Row order of the test images.
    train_betas : dict of str to ndarray or StoredBetas, shape (n_train_trials, n_voxels)
        Single-trial betas of the non-shared images, chronological, percent signal
        change. :class:`StoredBetas` (read on access) from ``load(..., lazy=True)``.
    train_nsd_ids : ndarray of int, shape (n_train_trials,)
    test_betas : dict of str to ndarray or StoredBetas, shape (n_test_images, n_voxels)
        Betas of the shared images averaged over their repeats (1-3).
    test_nsd_ids : ndarray of int, shape (n_test_images,)
    test_n_repeats : ndarray of int, shape (n_test_images,)
    voxel_indices : dict of str to ndarray of shape (n_voxels, 3)
        (x, y, z) voxel of each column, for putting results back into a volume;
        shape (n_vertices, 1), vertex numbers (lh then rh), for fsaverage.
    affine : ndarray of shape (4, 4)
        Voxel-to-world affine; eye(4) for fsaverage.
    volume_shape : tuple of int
        (X, Y, Z) grid of the subject; (n_vertices_lh + n_vertices_rh,) for fsaverage.
    meta : dict
        Settings that produced the split, and the package version.
    voxel_sets : tuple
        The voxel set behind each name in ``rois``, as given: a str (label,
        ``"brain"``, ``"nsdgeneral"`` or mask file) or a tuple of label names.
    ncsnr : dict of str to ndarray of float32, shape (n_voxels,)
        Data quality: NSD's noise-ceiling SNR of each voxel of a set (columns as
        ``voxel_indices``), from ``ncsnr.nii.gz`` (``{lh,rh}.ncsnr.mgh`` for
        fsaverage). Empty when that file was not on disk (older downloads lack
        it): absent, not an error. See :meth:`median_ncsnr`.
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
    voxel_sets: tuple = ()
    ncsnr: dict = field(default_factory=dict)

    def median_ncsnr(self, roi: str) -> float | None:
        """Median noise-ceiling SNR of the voxels of ``roi``; None when it was not recorded."""
        return median_ncsnr(self.ncsnr.get(roi))

    def summary(self) -> str:
        """Describe the split in a line: sessions, trial and image counts, voxels per set."""
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
                _write_split(f, self)
        write_json_atomic(_sidecar(path), self._sidecar_dict())
        return path

    def _sidecar_dict(self) -> dict:
        specs = self.voxel_sets or self.rois
        return {
            "format_version": _FORMAT_VERSION,
            "subject": self.subject,
            "rois": list(self.rois),
            "voxel_sets": [s if isinstance(s, str) else list(s) for s in specs],
            "atlas": self.atlas,
            "sessions": list(self.sessions),
            "split": self.split,
            "order": self.order,
            "volume_shape": list(self.volume_shape),
            "median_ncsnr": {r: self.median_ncsnr(r) for r in self.rois},
            **self.meta,
        }

    @classmethod
    def load(cls, path: str | os.PathLike, lazy: bool = False) -> SubjectSplit:
        """Read what :meth:`save` or :func:`prepare_subject` wrote (format 1 or 2).

        Parameters
        ----------
        path : path-like
            The HDF5 file; its sidecar ``path.json`` must sit beside it.
        lazy : bool
            If True, ``train_betas`` and ``test_betas`` hold :class:`StoredBetas`
            that read from the file on access; ids, voxel indices and the affine
            are read now either way.

        Returns
        -------
        split : SubjectSplit
        """
        import h5py

        path = Path(path)
        sidecar = _sidecar(path)
        if not sidecar.exists():
            raise FileNotFoundError(
                f"the split file {str(path)!r} has no sidecar {str(sidecar)!r}; "
                "it was not fully written; prepare it again."
            )
        meta = json.loads(sidecar.read_text())
        version = int(meta.get("format_version", 1))
        if version > _FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has format_version {version}; this brainldm reads versions "
                f"1 to {_FORMAT_VERSION}; update brainldm."
            )
        rois = tuple(meta["rois"])
        specs = tuple(s if isinstance(s, str) else tuple(s) for s in meta.get("voxel_sets", rois))
        absolute = str(path.resolve())

        def betas(f, name: str, key: str):
            ds = f[f"rois/{name}/{key}"]
            if lazy:
                return StoredBetas(absolute, ds.name, tuple(ds.shape), ds.dtype)
            return ds[()]

        with h5py.File(path, "r") as f:
            missing = [r for r in rois if f"rois/{r}" not in f]
            if missing:
                raise ValueError(
                    f"{str(path)!r} has no group for voxel set(s) {missing} listed in "
                    f"{str(sidecar)!r}; found {sorted(f['rois']) if 'rois' in f else []}."
                )
            return cls(
                subject=int(meta["subject"]),
                rois=rois,
                atlas=meta["atlas"],
                sessions=tuple(meta["sessions"]),
                split=meta["split"],
                order=meta["order"],
                train_betas={r: betas(f, r, "train_betas") for r in rois},
                train_nsd_ids=f["train_nsd_ids"][()],
                test_betas={r: betas(f, r, "test_betas") for r in rois},
                test_nsd_ids=f["test_nsd_ids"][()],
                test_n_repeats=f["test_n_repeats"][()],
                voxel_indices={r: f[f"rois/{r}/voxel_indices"][()] for r in rois},
                affine=f["affine"][()],
                volume_shape=tuple(meta["volume_shape"]),
                meta={k: meta[k] for k in ("fmt", "zscore", "package_version") if k in meta},
                voxel_sets=specs,
                ncsnr={r: f[f"rois/{r}/ncsnr"][()] for r in rois if f"rois/{r}/ncsnr" in f},
            )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _create_betas(group, key: str, shape: tuple[int, int], dtype: Any = np.float32):
    """Create a beta dataset chunked by blocks of rows and voxel columns (no compression)."""
    chunks = None if 0 in shape else (min(_CHUNK_ROWS, shape[0]), min(_CHUNK_VOXELS, shape[1]))
    return group.create_dataset(key, shape=shape, dtype=dtype, chunks=chunks)


def _write_betas(group, key: str, values: Any, what: str) -> None:
    """Copy a 2-D float array (or :class:`StoredBetas`) into a new chunked dataset."""
    shape, dtype = getattr(values, "shape", None), getattr(values, "dtype", None)
    if shape is None or len(shape) != 2 or dtype is None or np.dtype(dtype).kind != "f":
        raise TypeError(
            f"{what} must be a 2-D float array (n_rows, n_voxels); got {type(values).__name__}"
            f"{'' if shape is None else f' of shape {tuple(shape)}'}"
            f"{'' if dtype is None else f' and dtype {dtype}'}."
        )
    ds = _create_betas(group, key, tuple(shape), dtype)
    row_bytes = max(1, shape[1] * np.dtype(dtype).itemsize)
    step = max(_CHUNK_ROWS, _COPY_BYTES // row_bytes // _CHUNK_ROWS * _CHUNK_ROWS)
    for r0 in range(0, shape[0], step):
        ds[r0 : r0 + step] = np.asarray(values[r0 : r0 + step])


def _write_split(f, split: SubjectSplit, train_written: bool = False) -> None:
    """Write ``split`` into the open HDF5 file ``f`` (its train betas already, if said)."""
    f.attrs["format_version"] = _FORMAT_VERSION
    f["train_nsd_ids"] = split.train_nsd_ids
    f["test_nsd_ids"] = split.test_nsd_ids
    f["test_n_repeats"] = split.test_n_repeats
    f["affine"] = split.affine
    for name in split.rois:
        g = f.require_group(f"rois/{name}")
        if not train_written:
            _write_betas(g, "train_betas", split.train_betas[name], f"train_betas[{name!r}]")
        _write_betas(g, "test_betas", split.test_betas[name], f"test_betas[{name!r}]")
        g["voxel_indices"] = split.voxel_indices[name]
        if name in split.ncsnr:
            g["ncsnr"] = np.asarray(split.ncsnr[name], dtype=np.float32)


def _voxel_sets(rois: VoxelSet | Sequence[VoxelSet]) -> tuple[tuple, tuple[str, ...]]:
    """Normalised voxel sets and their names; a bare str or path is one voxel set."""
    if isinstance(rois, str | os.PathLike):
        rois = (rois,)
    if not isinstance(rois, Sequence):
        raise TypeError(
            f"rois={rois!r} is not valid; give a sequence of voxel sets, e.g. "
            "('early', 'ventral'), ['brain'] or [['early', 'ventral']] for one union."
        )
    specs = tuple(normalise_voxel_set(r) for r in rois)
    if not specs:
        raise ValueError("rois is empty; give at least one voxel set, e.g. ('early',).")
    names = tuple(voxel_set_name(s) for s in specs)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"rois={list(rois)!r} names the voxel set(s) {repeated} more than once.")
    return specs, names


def _fsaverage_vertices(layout: NSDLayout, subject: int, session: int) -> tuple[int, int]:
    """Vertices of the lh and rh fsaverage betas of one session."""
    return tuple(  # type: ignore[return-value]
        betas_file_shape(layout, layout.betas(subject, session, "fsaverage", h), "fsaverage")[1][0]
        for h in ("lh", "rh")
    )


def _roi_ncsnr(layout: NSDLayout, subject: int, fmt: str, masks: dict) -> dict:
    """Each voxel set's ncsnr (name → (n_voxels,)); {} when NSD's ncsnr file is not there."""
    try:
        values = load_ncsnr(layout, subject, fmt)
    except FileNotFoundError as err:
        logger.info("subject %d: no noise-ceiling SNR recorded (%s)", subject, err)
        return {}
    grid = next(iter(masks.values())).mask.shape
    if values.shape != grid:
        raise ValueError(
            f"the noise-ceiling SNR {str(layout.ncsnr(subject, fmt))!r} has shape "
            f"{values.shape}, but subject {subject}'s voxel sets have {grid}."
        )
    return {name: values[m.mask].astype(np.float32) for name, m in masks.items()}


def _checked_inputs(layout, subject, specs, atlas, split, sessions, fmt):
    """Check every file a split reads, from headers; return what the split needs.

    Returns ``(subject, sessions, design, trials, masks, ncsnr)`` with ``masks`` a
    dict of voxel-set name to :class:`VolumeMask` and ``ncsnr`` one of name to
    each voxel's noise-ceiling SNR (empty without NSD's file); raises naming the
    file or setting at fault before any beta is read.
    """
    check_option("fmt", fmt, BETA_FORMATS)
    subject = check_subject(layout, subject)
    chosen = resolve_sessions(layout.sessions(subject, fmt), sessions, split)
    design = load_expdesign(layout)
    trials = load_trials(layout, subject, chosen, fmt=fmt, design=design)
    if fmt == "fsaverage":
        n_vertices = _fsaverage_vertices(layout, subject, chosen[0])
        masks = {
            voxel_set_name(s): fsaverage_voxel_set(layout, subject, s, atlas, n_vertices)
            for s in specs
        }
        grids = {h: (n,) for h, n in zip(("lh", "rh"), n_vertices, strict=True)}
    else:
        masks = {voxel_set_name(s): load_voxel_set(layout, subject, s, atlas) for s in specs}
        grid = next(iter(masks.values())).mask.shape
        for name, mask in masks.items():
            if mask.mask.shape != grid:
                raise ValueError(
                    f"voxel set {name!r} has grid {mask.mask.shape}, but {next(iter(masks))!r} "
                    f"has {grid}; every voxel set must be on subject {subject}'s func1pt8mm grid."
                )
        grids = {"lh": grid}  # volumes: one file per session (hemi is ignored)
    for session in chosen:
        n_expected = int((trials.sessions == session).sum())
        for hemi, grid in grids.items():
            path = layout.betas(subject, session, fmt, hemi)
            check_session_trials(layout, path, fmt, n_expected, grid)
    return subject, chosen, design, trials, masks, _roi_ncsnr(layout, subject, fmt, masks)


def check_split_inputs(
    layout: NSDLayout,
    subject: int,
    rois: VoxelSet | Sequence[VoxelSet] = ("early", "ventral"),
    atlas: str = "streams",
    split: str = "takagi2023",
    sessions: Sequence[int] | None = None,
    fmt: str = "hdf5",
) -> None:
    """Check, without reading any beta, that :func:`split_subject` can read its inputs.

    Reads the design, the trial table and the voxel-set masks, and the header of
    every beta file (it opens, holds a ``betas`` array on the mask grid, with as
    many trials as ``responses.tsv`` lists for its session), and NSD's ncsnr
    file when it is there (one value per voxel). Parameters as
    :func:`split_subject`.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the missing or unreadable file, or the invalid setting.
    """
    specs, _ = _voxel_sets(rois)
    _checked_inputs(layout, subject, specs, atlas, split, sessions, fmt)


def _split_into(
    layout: NSDLayout,
    subject: int,
    rois: VoxelSet | Sequence[VoxelSet],
    atlas: str,
    split: str,
    sessions: Sequence[int] | None,
    fmt: str,
    zscore: bool,
    order: RowOrder,
    progress: bool,
    allocate: Callable[[str, tuple[int, int]], Any],
) -> SubjectSplit:
    """Build the split, writing each voxel set's train rows into ``allocate(name, shape)``.

    ``allocate`` returns something that takes ``out[a:b] = rows`` (an ndarray, or
    an HDF5 dataset): the train betas go there one session at a time; the test
    trials are kept in memory and averaged at the end. The returned split holds
    what ``allocate`` returned as its ``train_betas``.
    """
    from tqdm.auto import tqdm

    from brainldm import __version__

    check_option("order", order, ROW_ORDERS)
    specs, names = _voxel_sets(rois)
    subject, chosen, design, trials, masks, ncsnr = _checked_inputs(
        layout, subject, specs, atlas, split, sessions, fmt
    )
    is_test = split_shared(trials.nsd_ids, design.shared_nsd_ids)
    n_train, n_test = int((~is_test).sum()), int(is_test.sum())
    union = np.logical_or.reduce([m.mask for m in masks.values()])
    n_union = int(union.sum())
    # A set's columns within the union block: its voxels in C order, as its voxel_indices.
    columns = {name: np.flatnonzero(m.mask[union]) for name, m in masks.items()}
    train = {name: allocate(name, (n_train, len(cols))) for name, cols in columns.items()}
    # Test trials (shared images) stay in memory, once, with the union's columns.
    test_single = np.empty((n_test, n_union), dtype=np.float32)
    logger.info(
        "subject %d: %d voxel set(s), %d voxels in their union; %d train, %d test trials",
        subject, len(names), n_union, n_train, n_test,
    )  # fmt: skip
    t0 = k0 = 0  # next train row, next test row
    for session in tqdm(chosen, disable=not progress, desc="sessions"):
        session_test = is_test[trials.sessions == session]
        train_rows, test_rows = np.flatnonzero(~session_test), np.flatnonzero(session_test)
        block = load_betas(layout, subject, [session], union, fmt, zscore)
        t1, k1 = t0 + len(train_rows), k0 + len(test_rows)
        if t1 > t0:
            for name, cols in columns.items():
                every = len(cols) == n_union
                train[name][t0:t1] = block[train_rows] if every else block[np.ix_(train_rows, cols)]
        test_single[k0:k1] = block[test_rows]
        del block
        t0, k0 = t1, k1
    test_union, test_ids, n_repeats = _average_test_trials(
        test_single, trials.nsd_ids[is_test], order
    )
    del test_single
    test_betas = {}
    for name, cols in columns.items():  # a set that is the whole union shares it (once)
        shared = len(cols) == n_union and not any(v is test_union for v in test_betas.values())
        test_betas[name] = test_union if shared else test_union[:, cols]
    first = next(iter(masks.values()))
    result = SubjectSplit(
        subject=subject,
        rois=names,
        atlas=atlas,
        sessions=tuple(chosen),
        split=split if sessions is None else "custom",
        order=order,
        train_betas=train,
        train_nsd_ids=trials.nsd_ids[~is_test],
        test_betas=test_betas,
        test_nsd_ids=test_ids,
        test_n_repeats=n_repeats,
        voxel_indices={name: m.voxel_indices for name, m in masks.items()},
        affine=np.asarray(first.affine, dtype=float),
        volume_shape=tuple(int(s) for s in first.mask.shape),
        meta={"fmt": fmt, "zscore": bool(zscore), "package_version": __version__},
        voxel_sets=specs,
        ncsnr=ncsnr,
    )
    logger.info("%s", result.summary())
    return result


def _average_test_trials(
    single: np.ndarray, nsd_ids: np.ndarray, order: RowOrder
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`average_repeats` a block of columns at a time (bounds its float64 temporaries).

    Parameters
    ----------
    single : ndarray of shape (n_test_trials, n_voxels)
    nsd_ids : ndarray of int, shape (n_test_trials,)
    order : {"first_presentation", "sorted"}

    Returns
    -------
    mean : ndarray of float32, shape (n_images, n_voxels)
    unique_ids, n_repeats : ndarray of int, shape (n_images,)
    """
    n_images = len(np.unique(nsd_ids))
    mean = np.empty((n_images, single.shape[1]), dtype=np.float32)
    # Each column is averaged on its own, so blocks give the same values as one call.
    step = max(_CHUNK_VOXELS, _COPY_BYTES // max(1, 8 * len(single)))
    unique_ids = n_repeats = np.empty(0, dtype=np.int64)
    for c0 in range(0, max(1, single.shape[1]), step):
        block, unique_ids, n_repeats = average_repeats(single[:, c0 : c0 + step], nsd_ids, order)
        mean[:, c0 : c0 + step] = block
    return mean, unique_ids, n_repeats


def split_subject(
    layout: NSDLayout,
    subject: int,
    rois: VoxelSet | Sequence[VoxelSet] = ("early", "ventral"),
    atlas: str = "streams",
    split: str = "takagi2023",
    sessions: Sequence[int] | None = None,
    fmt: str = "hdf5",
    zscore: bool = False,
    order: RowOrder = "first_presentation",
    progress: bool = False,
) -> SubjectSplit:
    """Load a subject's betas of some voxel sets and split them: train trials, test averages.

    Everything is held in memory; :func:`prepare_subject` streams to disk instead
    and gives the same arrays.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
        NSD subject (1 for ``subj01``).
    rois : sequence of voxel sets, or one voxel set
        Each is loaded as separate columns, keyed by :func:`~brainldm.nsd.voxel_set_name`:
        a label name of ``atlas`` (``("early", "ventral")``: early → z and ventral
        → c in the paper), a list of label names (their union, e.g.
        ``[["early", "ventral"]]`` → key ``"early+ventral"``), ``"brain"``
        (brainmask.nii.gz), ``"nsdgeneral"``, or a ``.nii``/``.nii.gz`` mask on the
        subject's func1pt8mm grid (see :func:`~brainldm.nsd.load_voxel_set`). A bare
        str is one voxel set.
    atlas : str
        ``"streams"`` (the paper) or ``"nsdgeneral"`` or another volume atlas.
    split : {"takagi2023", "modern"}
        Session preset (see :data:`brainldm.nsd.SPLIT_PRESETS`); ignored when
        ``sessions`` is given.
    sessions : sequence of int, optional
        Explicit sessions, numbered from 1.
    fmt : {"hdf5", "nifti", "fsaverage"}
        Which copy of the betas to read. For ``"fsaverage"`` the columns are
        vertices (lh then rh), voxel sets are ``"brain"`` (every vertex),
        ``"nsdgeneral"`` or labels of the fsaverage label files.
    zscore : bool
        Z-score each voxel within each session (not done in the paper).
    order : {"first_presentation", "sorted"}
        Test image order: the seed's first-presentation order, or by ``nsd_id``.
    progress : bool
        Progress bars over sessions.

    Returns
    -------
    split : SubjectSplit
        With each voxel set's ncsnr (:attr:`SubjectSplit.ncsnr`) when NSD's
        ``ncsnr`` file is on disk.
    """
    return _split_into(
        layout, subject, rois, atlas, split, sessions, fmt, zscore, order, progress,
        allocate=lambda name, shape: np.empty(shape, dtype=np.float32),
    )  # fmt: skip


def _settings_voxel_set(spec: str | tuple[str, ...]) -> Any:
    """Return a voxel set as hashed into the file name: a mask file by path and content."""
    from brainldm._utils import path_fingerprint

    if isinstance(spec, str) and spec.endswith((".nii", ".nii.gz")):
        resolved = Path(spec).expanduser().resolve()
        return {"mask": str(resolved), "fingerprint": path_fingerprint(resolved)}
    return spec if isinstance(spec, str) else list(spec)


def prepare_subject(
    layout: NSDLayout,
    subject: int,
    out_dir: str | os.PathLike,
    rois: VoxelSet | Sequence[VoxelSet] = ("early", "ventral"),
    atlas: str = "streams",
    split: str = "takagi2023",
    sessions: Sequence[int] | None = None,
    fmt: str = "hdf5",
    zscore: bool = False,
    order: RowOrder = "first_presentation",
    progress: bool = False,
    lazy: bool = True,
) -> tuple[SubjectSplit, Path]:
    """:func:`split_subject`, streamed to a file in ``out_dir`` and re-used when asked again.

    The train rows of each session go straight into the HDF5 file, so the peak
    memory is about one session × the voxels of the union of ``rois`` (float32)
    plus the test trials. The file name carries a hash of the settings (and of
    any mask file's content), so another choice writes a new file.

    Parameters
    ----------
    layout, subject, rois, atlas, split, sessions, fmt, zscore, order, progress
        As :func:`split_subject`.
    out_dir : path-like
        Folder of the prepared files.
    lazy : bool
        Return the split with :class:`StoredBetas` (read on access; default), or
        with every beta loaded into memory (False).

    Returns
    -------
    split : SubjectSplit
        As :meth:`SubjectSplit.load` reads the file.
    path : Path
        The HDF5 file (its JSON sidecar is ``path`` + ``.json``).
    """
    import h5py

    from brainldm._utils import atomic_path, write_json_atomic

    specs, _ = _voxel_sets(rois)
    settings = {
        "root": str(layout.root.resolve()),
        "subject": subject,
        "rois": [_settings_voxel_set(s) for s in specs],
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
        return SubjectSplit.load(path, lazy=lazy), path
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:

            def allocate(name: str, shape: tuple[int, int]):
                return _create_betas(f.require_group(f"rois/{name}"), "train_betas", shape)

            result = _split_into(
                layout, subject, specs, atlas, split, sessions, fmt, zscore, order, progress,
                allocate=allocate,
            )  # fmt: skip
            _write_split(f, result, train_written=True)
            sidecar = result._sidecar_dict()
    write_json_atomic(_sidecar(path), sidecar)
    return SubjectSplit.load(path, lazy=lazy), path
