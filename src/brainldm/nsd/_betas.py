"""Single-trial betas, read session by session and masked before they are stacked.

Volume betas are stored as int16 holding percent signal change × 300
(:data:`BETA_SCALE`); fsaverage betas are float32 already in percent signal
change. Every reader returns percent signal change.

Memory: the result is allocated once, at its final (masked) size, and each
session is read in small blocks straight into it, so the peak is the masked
result plus one block (a z-slab of the HDF5 file, a few volumes of the NIfTI).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainldm.nsd._layout import BETA_FORMATS, NSDLayout
from brainldm.nsd._rois import VolumeMask

logger = logging.getLogger(__name__)

#: NSD stores volume betas as int16 = percent signal change × 300.
BETA_SCALE = 300.0

# Bytes read per block from a NIfTI or MGH file (bounds the extra memory).
_BLOCK_BYTES = 64 * 2**20


def _shape_mismatch(path: Path, got: tuple, expected: tuple, what: str) -> ValueError:
    return ValueError(
        f"{what} of {str(path)!r} is {got}, but the ROI/mask grid is {expected}; "
        "the mask and the betas must come from the same subject and space (func1pt8mm)."
    )


def betas_file_shape(layout: NSDLayout, path: Path, fmt: str) -> tuple[int, tuple[int, ...]]:
    """Read one beta file's header: its number of trials and its grid.

    Parameters
    ----------
    layout : NSDLayout
        Names the NSD download of a file that is missing or unreadable.
    path : Path
        One session's betas.
    fmt : {"hdf5", "nifti", "fsaverage"}

    Returns
    -------
    n_trials : int
        Length of the trial axis (750 in NSD).
    grid : tuple of int
        ``(X, Y, Z)`` for volumes (NIfTI order, also for HDF5's reversed axes);
        ``(n_vertices,)`` for one fsaverage hemisphere.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If it cannot be read (truncated, not HDF5/NIfTI/MGH, no ``/betas`` dataset,
        wrong number of dimensions); the message names the file and its download.
    """
    layout.require(path)
    try:
        if fmt == "hdf5":
            import h5py

            with h5py.File(path, "r") as f:
                if "betas" not in f:
                    raise ValueError(f"it has no 'betas' dataset (found {sorted(f)[:5]})")
                shape = tuple(int(n) for n in f["betas"].shape)
            if len(shape) != 4:
                raise ValueError(f"its 'betas' dataset has shape {shape}, not (trials, Z, Y, X)")
            return shape[0], shape[:0:-1]
        import nibabel as nib

        shape = tuple(int(n) for n in nib.load(path).shape)
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise ValueError(
            f"cannot read the betas file {str(path)!r} ({' '.join(str(err).split())}); it may be "
            f"truncated or corrupt: download it again from {layout.download_of(path)}."
        ) from None
    if fmt == "fsaverage":
        return shape[-1], (int(np.prod(shape[:-1])),)
    if len(shape) != 4:
        raise ValueError(f"the betas file {str(path)!r} has shape {shape}, not (X, Y, Z, trials).")
    return shape[3], shape[:3]


def check_session_trials(
    layout: NSDLayout, path: Path, fmt: str, n_expected: int, grid: tuple | None = None
) -> None:
    """Raise a ValueError naming ``path`` unless it holds ``n_expected`` trials on ``grid``.

    ``n_expected`` is the number of trials the design (``responses.tsv``) lists
    for the session; ``grid`` the ROI volume's (X, Y, Z), or None not to check it.
    """
    n_trials, found = betas_file_shape(layout, path, fmt)
    if n_trials != n_expected:
        raise ValueError(
            f"the betas file {str(path)!r} holds {n_trials} trials, but responses.tsv lists "
            f"{n_expected} for its session; it may be truncated or from another release."
        )
    if grid is not None and tuple(found) != tuple(grid):
        raise _shape_mismatch(path, tuple(found), tuple(grid), "The (X, Y, Z) grid")


def _read_hdf5_session(path: Path, mask: np.ndarray, out: np.ndarray, rows: np.ndarray) -> None:
    """Read masked voxels of one ``/betas`` (trials, Z, Y, X) file into ``out[rows]``.

    Reads one z-slab of the mask's bounding box at a time (NSD files are chunked
    one voxel per chunk, so a slab touches only the chunks it needs).
    """
    import h5py

    column = np.full(mask.shape, -1, dtype=np.int64)
    column[mask] = np.arange(int(mask.sum()))
    column_zyx = column.transpose(2, 1, 0)
    mask_zyx = mask.transpose(2, 1, 0)
    with h5py.File(path, "r") as f:
        ds = f["betas"]
        if ds.ndim != 4 or tuple(ds.shape[1:]) != mask_zyx.shape:
            raise _shape_mismatch(path, tuple(ds.shape[1:]), mask_zyx.shape, "The (Z, Y, X) grid")
        if ds.shape[0] != len(rows):
            raise ValueError(f"{path} holds {ds.shape[0]} trials, the design {len(rows)}.")
        zs, ys, xs = np.nonzero(mask_zyx)
        if zs.size == 0:
            return
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        contiguous = np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows)))
        for z in np.unique(zs):
            slab_mask = mask_zyx[z, y0:y1, x0:x1]
            cols = column_zyx[z, y0:y1, x0:x1][slab_mask]
            values = ds[:, z, y0:y1, x0:x1][:, slab_mask]
            if contiguous:
                out[rows[0] : rows[0] + len(rows), cols] = values
            else:
                out[np.ix_(rows, cols)] = values


def _read_nifti_session(path: Path, mask: np.ndarray, out: np.ndarray, rows: np.ndarray) -> None:
    """Read masked voxels of one (X, Y, Z, trials) NIfTI file into ``out[rows]``.

    The file is streamed once, a block of volumes at a time (each volume is
    contiguous on disk), so a gzip file is decompressed exactly once.
    """
    import nibabel as nib
    from nibabel.openers import Opener

    img = nib.load(path)
    shape = img.shape
    if len(shape) != 4 or tuple(shape[:3]) != mask.shape:
        raise _shape_mismatch(path, tuple(shape[:3]), mask.shape, "The (X, Y, Z) grid")
    if shape[3] != len(rows):
        raise ValueError(f"{path} holds {shape[3]} trials, the design {len(rows)}.")
    header = img.header
    dtype = header.get_data_dtype()
    slope, inter = header.get_slope_inter()
    slope = 1.0 if slope is None or not np.isfinite(slope) else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    flat_mask = mask.ravel(order="F")  # volumes are stored in Fortran order
    # Columns are in C order over (X, Y, Z); map the Fortran-ordered voxels onto them.
    column = np.full(mask.shape, -1, dtype=np.int64)
    column[mask] = np.arange(int(mask.sum()))
    cols = column.ravel(order="F")[flat_mask]
    n_vox_volume = flat_mask.size
    per_block = max(1, _BLOCK_BYTES // (n_vox_volume * dtype.itemsize))
    with Opener(str(path)) as fobj:
        fobj.seek(int(img.dataobj.offset))
        for t0 in range(0, shape[3], per_block):
            n = min(per_block, shape[3] - t0)
            raw = fobj.read(n * n_vox_volume * dtype.itemsize)
            block = np.frombuffer(raw, dtype=dtype).reshape(n, n_vox_volume)[:, flat_mask]
            if slope != 1.0 or inter != 0.0:
                block = block * slope + inter
            out[np.ix_(rows[t0 : t0 + n], cols)] = block


def _read_fsaverage_session(
    paths: Sequence[Path], vertex_mask: np.ndarray | None, out: np.ndarray, rows: np.ndarray
) -> None:
    """Read lh then rh ``.mgh`` betas, (V, 1, 1, trials) float32, into ``out[rows]``."""
    import nibabel as nib

    images = [nib.load(p) for p in paths]
    sizes = [int(np.prod(img.shape[:-1])) for img in images]
    if vertex_mask is not None and vertex_mask.size != sum(sizes):
        raise ValueError(
            f"vertex mask has {vertex_mask.size} vertices, but {[str(p) for p in paths]} "
            f"hold {sizes[0]} + {sizes[1]} = {sum(sizes)}."
        )
    col0 = 0
    start = 0
    for img, size in zip(images, sizes, strict=True):
        if img.shape[-1] != len(rows):
            raise ValueError(f"{img.get_filename()} holds {img.shape[-1]} trials, not {len(rows)}.")
        keep = slice(None) if vertex_mask is None else vertex_mask[start : start + size]
        n_keep = size if vertex_mask is None else int(keep.sum())
        cols = np.arange(col0, col0 + n_keep)
        # Each trial's map is contiguous on disk: read a block of trials at a time.
        per_block = max(1, _BLOCK_BYTES // (4 * size))
        for t0 in range(0, len(rows), per_block):
            t1 = min(t0 + per_block, len(rows))
            block = np.asarray(img.dataobj[..., t0:t1], dtype=np.float32).reshape(size, -1)
            out[np.ix_(rows[t0:t1], cols)] = block[keep].T
        col0 += n_keep
        start += size


def zscore_rows_inplace(X: np.ndarray) -> np.ndarray:
    """Z-score each column of ``X`` over its rows, in place, tolerating bad voxels.

    Columns with zero variance, or with no finite value, become 0; NaN entries
    become 0 (the mean) after scaling. No warning is emitted for them.

    Parameters
    ----------
    X : ndarray of shape (n_trials, n_voxels)
        One session's betas, float.

    Returns
    -------
    X : ndarray of shape (n_trials, n_voxels)
        The same array.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        finite = np.isfinite(X)
        counts = finite.sum(axis=0)
        Xf = np.where(finite, X, 0)
        mean = Xf.sum(axis=0) / np.maximum(counts, 1)
        var = (np.where(finite, X - mean, 0) ** 2).sum(axis=0) / np.maximum(counts, 1)
        std = np.sqrt(var)
        good = (counts > 0) & (std > 0)
        X -= mean
        X /= np.where(good, std, 1)
    X[:, ~good] = 0
    X[~finite] = 0
    return X


def load_betas(
    layout: NSDLayout,
    subject: int,
    sessions: Sequence[int],
    mask: VolumeMask | np.ndarray | None = None,
    fmt: str = "hdf5",
    zscore: bool = False,
    dtype: str | np.dtype = "float32",
    out: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Masked single-trial betas of one subject, in percent signal change.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
        NSD subject (1 for ``subj01``).
    sessions : sequence of int
        Sessions to read (numbered from 1, as in the file names), in row order.
    mask : VolumeMask, ndarray of bool, or None
        For ``hdf5``/``nifti``: voxel mask of shape (X, Y, Z) (NIfTI order), required.
        For ``fsaverage``: vertex mask of shape (n_vertices_lh + n_vertices_rh,) or
        None for all vertices.
    fmt : {"hdf5", "nifti", "fsaverage"}
        Which copy of the betas to read. The HDF5 and NIfTI copies hold the same
        values (int16, PSC × 300); fsaverage betas are float32 PSC.
    zscore : bool
        If True, z-score each voxel within each session (zero-variance or NaN
        voxels become 0). Not done by the paper (seed_code.md §2).
    dtype : str or dtype
        Float dtype of the result.
    out, rows : ndarray, optional
        Write into ``out`` (n_rows, n_voxels) at row ``rows[i]`` for the i-th trial
        (sessions in order) instead of allocating; used to build splits without a copy.
    progress : bool
        Show a progress bar over sessions.

    Returns
    -------
    betas : ndarray of shape (n_trials, n_voxels)
        Trials of all sessions, session by session in file order; voxel columns
        in ``mask.voxel_indices`` order (vertices: lh then rh).
    """
    from tqdm.auto import tqdm

    from brainldm._utils import check_option

    check_option("fmt", fmt, BETA_FORMATS)
    if isinstance(mask, VolumeMask):
        mask = mask.mask
    if fmt != "fsaverage":
        if mask is None:
            raise ValueError(f"mask is required for fmt={fmt!r}; use load_roi_mask(...).")
        mask = np.asarray(mask, dtype=bool)
    sessions = list(sessions)
    available = layout.sessions(subject, fmt)
    unknown = [s for s in sessions if s not in available]
    if unknown:
        raise ValueError(
            f"sessions {unknown} of subject {subject} have no {fmt} betas under "
            f"{str(layout.betas(subject, 1, fmt).parent)!r}; available sessions: {available}."
        )
    paths = [layout.betas(subject, s, fmt) for s in sessions]
    counts = [betas_file_shape(layout, p, fmt)[0] for p in paths]
    if fmt == "fsaverage":
        import nibabel as nib

        n_vertices = sum(
            int(np.prod(nib.load(layout.betas(subject, sessions[0], fmt, h)).shape[:-1]))
            for h in ("lh", "rh")
        )
        n_columns = n_vertices if mask is None else int(np.asarray(mask).sum())
    else:
        n_columns = int(mask.sum())
    if out is None:
        out = np.empty((sum(counts), n_columns), dtype=dtype)
        rows = np.arange(sum(counts))
    elif rows is None or len(rows) != sum(counts) or out.shape[1] != n_columns:
        raise ValueError(
            f"out/rows do not fit: {sum(counts)} trials × {n_columns} voxels expected."
        )
    start = 0
    for session, path, count in tqdm(
        list(zip(sessions, paths, counts, strict=True)), disable=not progress, desc="sessions"
    ):
        session_rows = np.asarray(rows[start : start + count])
        if fmt == "hdf5":
            _read_hdf5_session(path, mask, out, session_rows)
        elif fmt == "nifti":
            _read_nifti_session(path, mask, out, session_rows)
        else:
            lh_rh = [layout.betas(subject, session, fmt, h) for h in ("lh", "rh")]
            _read_fsaverage_session([layout.require(p) for p in lh_rh], mask, out, session_rows)
        contiguous = np.array_equal(
            session_rows, np.arange(session_rows[0], session_rows[0] + count)
        )
        sl = slice(session_rows[0], session_rows[0] + count) if contiguous else session_rows
        if fmt != "fsaverage":
            if contiguous:
                out[sl] /= BETA_SCALE
            else:
                out[sl] = out[sl] / BETA_SCALE
        if zscore:
            if contiguous:
                zscore_rows_inplace(out[sl])
            else:
                out[sl] = zscore_rows_inplace(out[sl])
        start += count
    logger.info(
        "subject %d: betas %s from %d %s session(s)", subject, out.shape, len(sessions), fmt
    )
    return out
