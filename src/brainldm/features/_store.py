"""A feature store keyed by ``nsd_id``: chunked HDF5, resumable, never half-written.

Layout of ``folder/name``:

- ``meta.json``: the settings that produced the feature (model fingerprint, sizes,
  ...), the dtype of the values and the package version. Reopening a store with
  other settings or another dtype is an error.
- ``parts/{first_id:06d}-{n}-{sha1}.h5``: one file per :meth:`FeatureStore.put`
  (a batch of images), with datasets ``ids`` (int64, shape (n,)) and ``values``
  (shape (n, *entry_shape), in the store's dtype). The name hashes the ids, so
  two writers of the same batch write the same name.
- ``data.h5``: the consolidated store (:meth:`FeatureStore.consolidate`), with
  ``ids`` (sorted int64, shape (n,)) and ``values`` (shape (n, n_features)),
  chunked (about 1 MiB a chunk, at most 64 rows) so that a block of feature
  columns over all rows reads few chunks; attribute ``entry_shape``.

Why HDF5 parts rather than one ``.npy`` per image and feature (about a million
files for one NSD subject: ~10,000 images × z, c, zc at several noise levels and
stages, and U-Net activations of 10^5–2.6×10^6 values per image):

- h5py is a core dependency already (NSD itself ships its betas as HDF5);
- each part has one writer and appears whole by an atomic rename, so parallel
  writers (Ray workers on a shared filesystem) never share a file and need no
  file locking, which NFS handles badly; a killed write leaves a ``.tmp-*`` file,
  never half an entry, and a re-run computes only the missing batches;
- consolidation, once every writer is done, gives one file whose chunks serve
  column-block reads (:meth:`FeatureStore.matrix`), e.g. for out-of-core PCA.

The store makes O(batches) files, and O(1) once consolidated.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainldm.config import FeaturesConfig

logger = logging.getLogger(__name__)

_DTYPES = ("float32", "float16")
_PART = re.compile(r"^\d{6,}-\d+-[0-9a-f]{8}\.h5$")
_CHUNK_BYTES = 2**20  # about 1 MiB per chunk of data.h5
_BLOCK_BYTES = 2**26  # at most about 64 MiB read at once (plus the result)
_MAX_CHUNK_ROWS = 64


def _h5_options() -> dict:
    """``locking=False`` where HDF5 supports it: a file has one writer, and NFS locks badly."""
    import h5py

    v = h5py.version.hdf5_version_tuple
    return {"locking": False} if v >= (1, 12, 1) or (1, 10, 7) <= v < (1, 11) else {}


def _as_ids(nsd_ids: Sequence[int]) -> np.ndarray:
    return np.asarray([int(i) for i in nsd_ids], dtype=np.int64)


def _dtype_name(dtype) -> str:
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


@dataclass(frozen=True)
class _Index:
    """Where each stored id lies: ``files[file[k]]``, row ``row[k]``, for ``ids[k]`` (sorted)."""

    files: tuple[Path, ...]  # data.h5 first when it exists, then the parts by name
    has_data: bool
    ids: np.ndarray
    file: np.ndarray
    row: np.ndarray
    entry_shape: tuple[int, ...] | None

    def found(self, nsd_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position in ``ids`` of each of ``nsd_ids``, and whether it is stored."""
        pos = np.searchsorted(self.ids, nsd_ids)
        clipped = np.minimum(pos, max(len(self.ids) - 1, 0))
        hit = (pos < len(self.ids)) & (self.ids[clipped] == nsd_ids) if len(self.ids) else pos < 0
        return clipped, hit

    @property
    def n_features(self) -> int | None:
        return None if self.entry_shape is None else int(np.prod(self.entry_shape, dtype=np.int64))


class FeatureStore:
    """Arrays of one feature (e.g. ``"z"``), one per ``nsd_id``, in chunked HDF5 files.

    Entries are written once: :meth:`put` skips the ids already stored (a resumed
    run re-puts whole batches, whose values are identical). Any number of
    processes may :meth:`put` at once; :meth:`consolidate` only when none does.

    Parameters
    ----------
    folder : path-like
        Root folder of the store; this feature lives in ``folder/name``.
    name : str
        Feature name (``"z"``, ``"c"``, ``"zc_s0.50_f1.00"``, ...).
    meta : dict, optional
        Settings that produced the feature (model fingerprint, sizes, ...). When
        the store exists, they must equal what it holds. Without ``meta`` (and
        ``dtype``), an existing store is opened as it is.
    dtype : {"float32", "float16"}, optional
        Dtype of the stored values (float16 halves U-Net activations); default
        float32. Compared with the stored one when reopening with ``meta`` or
        ``dtype``. Reads return float32 whatever it is.

    Attributes
    ----------
    path : Path
        ``folder/name``.
    name : str
    meta : dict
        What ``meta.json`` holds: ``name``, ``settings``, ``dtype``, ``package_version``.
    """

    def __init__(
        self, folder: str | os.PathLike, name: str, meta: dict | None = None, dtype=None
    ) -> None:
        from brainldm import __version__
        from brainldm._utils import check_option, write_json_atomic

        if dtype is not None:
            dtype = check_option("FeatureStore dtype", _dtype_name(dtype), _DTYPES)
        self.path = Path(folder) / name
        self.name = name
        self._parts: dict[str, tuple[np.ndarray, tuple[int, ...]]] = {}  # parts are immutable
        self._data: tuple | None = None  # (stat key, ids, entry_shape) of data.h5
        meta_path = self.path / "meta.json"
        if meta_path.exists():
            stored = json.loads(meta_path.read_text())
            if "dtype" not in stored:
                raise ValueError(
                    f"feature store {str(self.path)!r} has the old layout (one .npy per "
                    "entry); delete it (or use another folder) and extract the features again."
                )
            settings = stored.get("settings", {})
            differ = {k: (settings.get(k), v) for k, v in (meta or {}).items()
                      if settings.get(k) != v}  # fmt: skip
            if (meta is not None or dtype is not None) and stored["dtype"] != (dtype or "float32"):
                differ["dtype"] = (stored["dtype"], dtype or "float32")
            if differ:
                raise ValueError(
                    f"feature store {str(self.path)!r} was made with other settings "
                    f"(stored, requested): {differ}; use another folder or delete it."
                )
            self.meta = stored
        else:
            if meta is None:
                raise FileNotFoundError(f"no feature store at {str(self.path)!r}.")
            (self.path / "parts").mkdir(parents=True, exist_ok=True)
            self.meta = {"name": name, "settings": meta, "dtype": dtype or "float32",
                         "package_version": __version__}  # fmt: skip
            write_json_atomic(meta_path, self.meta)

    # ------------------------------------------------------------------ index

    def _data_file(self) -> Path:
        return self.path / "data.h5"

    def _read_data_index(self) -> tuple | None:
        """Ids and entry shape of data.h5, cached while the file is the same."""
        import h5py

        path = self._data_file()
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._data is None or self._data[0] != key:
            with h5py.File(path, "r", **_h5_options()) as f:
                shape = tuple(int(s) for s in f.attrs["entry_shape"])
                self._data = (key, f["ids"][:].astype(np.int64), shape)
        return self._data

    def _index(self) -> _Index:
        """Rescan ``parts/`` (reading only new parts) and data.h5: what is stored, where."""
        import h5py

        parts_dir = self.path / "parts"
        names = (
            sorted(n for n in os.listdir(parts_dir) if _PART.match(n)) if parts_dir.is_dir() else []
        )
        listed = set(names)
        self._parts = {n: v for n, v in self._parts.items() if n in listed}
        parts = []
        for n in names:
            if n not in self._parts:
                try:
                    with h5py.File(parts_dir / n, "r", **_h5_options()) as f:
                        self._parts[n] = (f["ids"][:].astype(np.int64), f["values"].shape[1:])
                except FileNotFoundError:
                    continue  # merged by a consolidation since the listing: in data.h5 below
            parts.append(n)
        # read after the parts: a consolidation renames data.h5 before deleting its parts
        data = self._read_data_index()
        files = ([self._data_file()] if data else []) + [parts_dir / n for n in parts]
        id_lists = ([data[1]] if data else []) + [self._parts[n][0] for n in parts]
        shapes = ([data[2]] if data else []) + [self._parts[n][1] for n in parts]
        if not id_lists:
            empty = np.empty(0, np.int64)
            return _Index((), False, empty, empty, empty, None)
        all_ids = np.concatenate(id_lists)
        file = np.repeat(np.arange(len(id_lists)), [len(x) for x in id_lists])
        row = np.concatenate([np.arange(len(x)) for x in id_lists])
        # an id in data.h5 and in a part (a kill after a consolidation's rename): the
        # values are the same; the first occurrence, data.h5's, is kept
        ids, first = np.unique(all_ids, return_index=True)
        return _Index(tuple(files), data is not None, ids, file[first], row[first], shapes[0])

    def _locate(self, index: _Index, nsd_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, hit = index.found(nsd_ids)
        if not hit.all():
            missing = list(dict.fromkeys(int(i) for i in nsd_ids[~hit]))
            raise KeyError(
                f"feature {self.name!r} has no entry for nsd_id(s) {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''} in {str(self.path)!r}."
            )
        return index.file[pos], index.row[pos]

    # ----------------------------------------------------------------- public

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the stored values (reads return float32)."""
        return np.dtype(self.meta["dtype"])

    @property
    def entry_shape(self) -> tuple[int, ...] | None:
        """Shape of one entry, e.g. (4, 40, 40); None while the store is empty."""
        return self._index().entry_shape

    @property
    def n_features(self) -> int | None:
        """Values per entry (the product of :attr:`entry_shape`); None while empty."""
        return self._index().n_features

    def ids(self) -> np.ndarray:
        """Sorted ``nsd_id`` of the stored entries."""
        return self._index().ids.copy()

    def __contains__(self, nsd_id: int) -> bool:
        return bool(self._index().found(np.array([int(nsd_id)], np.int64))[1][0])

    def __len__(self) -> int:
        return len(self._index().ids)

    def missing(self, nsd_ids: Sequence[int]) -> np.ndarray:
        """Return the ids of ``nsd_ids`` (unique, in first-seen order) not stored yet."""
        unique = _as_ids(dict.fromkeys(int(i) for i in nsd_ids))
        return unique[~self._index().found(unique)[1]]

    def put(self, nsd_ids: Sequence[int], values: np.ndarray) -> None:
        """Store ``values[i]`` for ``nsd_ids[i]``: the new ones, in one part file, atomically.

        Ids already stored are skipped (entries are written once; a resumed run
        re-puts whole batches, whose values are identical).

        Parameters
        ----------
        nsd_ids : sequence of int
            Unique, non-negative.
        values : ndarray of shape (len(nsd_ids), *entry_shape)
            Cast to the store's dtype.

        Raises
        ------
        ValueError
            On a shape that differs from the stored entries', or on values too
            large for the dtype (e.g. |x| > 65504 in float16).
        """
        import hashlib

        import h5py

        from brainldm._utils import atomic_path

        ids, values = _as_ids(nsd_ids), np.asarray(values)
        where = f"feature store {str(self.path)!r}"
        if len(values) != len(ids):
            raise ValueError(f"{where}: {len(ids)} nsd_ids but {len(values)} rows of values.")
        if len(np.unique(ids)) != len(ids) or (len(ids) and ids.min() < 0):
            raise ValueError(f"{where}: nsd_ids must be unique and non-negative.")
        index = self._index()
        shape = tuple(int(s) for s in values.shape[1:])
        if index.entry_shape is not None and shape != index.entry_shape:
            raise ValueError(f"{where} holds entries of shape {index.entry_shape}, not {shape}.")
        new = ~index.found(ids)[1]
        if not new.any():
            return
        ids, values = ids[new], self._cast(values[new])
        digest = hashlib.sha1(ids.astype("<i8").tobytes()).hexdigest()[:8]
        part = self.path / "parts" / f"{ids[0]:06d}-{len(ids)}-{digest}.h5"
        with atomic_path(part) as tmp, h5py.File(tmp, "w", **_h5_options()) as f:
            f.create_dataset("ids", data=ids)
            f.create_dataset("values", data=values)
        self._parts[part.name] = (ids, shape)

    def _cast(self, values: np.ndarray) -> np.ndarray:
        """``values`` in the store's dtype; an error where a finite value would become inf."""
        if values.dtype == self.dtype:
            return values
        with np.errstate(over="ignore", invalid="ignore"):
            cast = values.astype(self.dtype)
            overflow = np.isinf(cast) & np.isfinite(values)
        if overflow.any():
            top = float(np.max(np.abs(values[overflow])))
            raise ValueError(
                f"feature store {str(self.path)!r} holds {self.dtype.name}, whose largest "
                f"value is {float(np.finfo(self.dtype).max):g}, but {int(overflow.sum())} "
                f"value(s) exceed it (up to {top:g}); store this feature as float32 "
                "(dtype='float32', in another folder) or scale it."
            )
        return cast

    def get(self, nsd_ids: Sequence[int]) -> np.ndarray:
        """Stacked entries, in the order of ``nsd_ids`` (repeats allowed).

        Returns
        -------
        values : ndarray of float32, shape (len(nsd_ids), *entry_shape)

        Raises
        ------
        KeyError
            Naming the ids that are not stored.
        """
        ids = _as_ids(nsd_ids)
        index = self._index()
        out = self._read(index, ids, 0, index.n_features or 0)
        if index.entry_shape is None:
            return np.empty((0,), np.float32)
        return out.reshape(len(ids), *index.entry_shape)

    def matrix(self, nsd_ids: Sequence[int]) -> StoreMatrix:
        """Return a lazy 2-D view of the entries of ``nsd_ids``, flattened, rows in their order.

        Parameters
        ----------
        nsd_ids : sequence of int
            Every one stored (checked now).

        Returns
        -------
        matrix : StoreMatrix
            Shape (len(nsd_ids), n_features); reads open the files each time.
        """
        ids = _as_ids(nsd_ids)
        index = self._index()
        self._locate(index, ids)
        return StoreMatrix(self.path, ids, index.n_features or 0)

    def consolidate(self, block_bytes: int = _BLOCK_BYTES) -> Path:
        """Merge the parts (and data.h5) into a new data.h5; delete the merged parts.

        The new file is written beside and renamed onto data.h5, copying blocks
        of about ``block_bytes`` at a time (the store is never held in memory
        whole). A kill after the rename but before the parts are deleted leaves
        parts whose entries data.h5 also holds: reads prefer data.h5, and the
        next consolidation deletes them. Run it only while no process writes to
        the store (e.g. after every worker finished). Idempotent.

        Parameters
        ----------
        block_bytes : int
            Memory for one block of rows.

        Returns
        -------
        path : Path
            ``folder/name/data.h5`` (absent if the store is empty).
        """
        import h5py

        from brainldm._utils import atomic_path

        index = self._index()
        parts = index.files[1:] if index.has_data else index.files
        data = self._data_file()
        new_ids = (index.file > 0) if index.has_data else np.ones(len(index.ids), bool)
        if not new_ids.any():
            for part in parts:  # their entries are all in data.h5 already (or none is stored)
                part.unlink(missing_ok=True)
            return data
        n, shape, nf = len(index.ids), index.entry_shape, index.n_features
        row_bytes = max(nf * self.dtype.itemsize, 1)
        chunk_rows = max(1, min(n, _MAX_CHUNK_ROWS, block_bytes // row_bytes))
        chunk_cols = max(1, min(nf, _CHUNK_BYTES // (chunk_rows * self.dtype.itemsize)))
        block = chunk_rows * max(1, block_bytes // (chunk_rows * row_bytes))  # whole chunks
        with atomic_path(data) as tmp, h5py.File(tmp, "w", **_h5_options()) as f:
            f.attrs["entry_shape"] = np.asarray(shape, dtype=np.int64)
            f.create_dataset("ids", data=index.ids)
            values = f.create_dataset("values", (n, nf), dtype=self.dtype,
                                      chunks=(chunk_rows, chunk_cols))  # fmt: skip
            for start in range(0, n, block):
                ids = index.ids[start : start + block]
                values[start : start + len(ids)] = self._read(index, ids, 0, nf, self.dtype)
        for part in parts:
            part.unlink(missing_ok=True)
        logger.info("feature %s: %d entries consolidated from %d parts", self.name, n, len(parts))
        return data

    # ------------------------------------------------------------------ reads

    def _read(
        self, index: _Index, ids: np.ndarray, lo: int, hi: int, dtype=np.float32
    ) -> np.ndarray:
        """Flattened columns ``lo:hi`` of the entries of ``ids``, one file at a time.

        Returns
        -------
        values : ndarray of shape (len(ids), hi - lo)
        """
        file, row = self._locate(index, ids)
        out = np.empty((len(ids), hi - lo), dtype)
        order = np.argsort(file, kind="stable")
        bounds = np.flatnonzero(np.diff(file[order])) + 1
        for sel in np.split(order, bounds) if len(ids) else []:
            urows, inv = np.unique(row[sel], return_inverse=True)
            by = np.argsort(inv, kind="stable")
            sorted_inv = inv[by]
            for u0, u1, block in _row_blocks(index.files[file[sel[0]]], urows, lo, hi):
                a, b = np.searchsorted(sorted_inv, [u0, u1])
                take = by[a:b]
                out[sel[take]] = block[inv[take] - u0]
        return out


def _row_blocks(
    path: Path, rows: np.ndarray, lo: int, hi: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Read flattened columns ``lo:hi`` of the sorted unique ``rows`` of a file, by blocks.

    Yields
    ------
    u0, u1 : int
        The block holds ``rows[u0:u1]``.
    block : ndarray of shape (u1 - u0, hi - lo)
    """
    import h5py

    with h5py.File(path, "r", **_h5_options()) as f:
        dset = f["values"]
        # data.h5 is 2-D; a part is (n, *entry_shape): read the slab of its first
        # entry axis that covers the columns, then cut them out
        inner = int(np.prod(dset.shape[2:], dtype=np.int64)) if dset.ndim > 2 else 1
        i0, i1 = lo // inner, -(-hi // inner)
        row_bytes = max((i1 - i0) * inner * dset.dtype.itemsize, 1)
        step = dset.chunks[0] if dset.chunks else 1
        step *= max(1, _BLOCK_BYTES // (step * row_bytes))
        keys = rows // step
        bounds = np.flatnonzero(np.diff(keys)) + 1
        starts = np.concatenate([[0], bounds]).astype(int)
        ends = np.concatenate([bounds, [len(rows)]]).astype(int)
        for u0, u1 in zip(starts, ends, strict=True):
            r0, r1 = int(rows[u0]), int(rows[u1 - 1]) + 1
            if dset.ndim == 1:
                raw = dset[r0:r1].reshape(r1 - r0, 1)
            else:
                raw = dset[r0:r1, i0:i1].reshape(r1 - r0, -1)
            yield u0, u1, raw[rows[u0:u1] - r0, lo - i0 * inner : hi - i0 * inner]


class StoreMatrix:
    """A lazy, picklable 2-D view of entries of a :class:`FeatureStore`.

    Rows are the entries of ``ids`` (in that order), flattened; reads open the
    store's files each time and return float32. Indexing supports
    ``m[a:b]``, ``m[a:b, :]``, ``m[:, a:b]``, integer rows or columns and arrays
    of row indices.

    Parameters
    ----------
    path : path-like
        The store's folder (``folder/name``).
    ids : ndarray of int64, shape (n_rows,)
    n_features : int

    Attributes
    ----------
    shape : tuple of int
        (len(ids), n_features).
    dtype : numpy.dtype
        float32.
    ndim : int
        2.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, path: str | os.PathLike, ids: np.ndarray, n_features: int) -> None:
        self.path = Path(path)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.n_features = int(n_features)
        self._store: FeatureStore | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.ids), self.n_features)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"StoreMatrix({str(self.path)!r}, shape={self.shape})"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None}  # the store's caches stay behind

    def select_rows(self, index) -> StoreMatrix:
        """Return the lazy view of rows ``index`` (positions, a slice or a boolean mask)."""
        return StoreMatrix(self.path, self.ids[index], self.n_features)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key) -> np.ndarray:
        rows_key, cols_key = key if isinstance(key, tuple) else (key, slice(None))
        if isinstance(key, tuple) and len(key) != 2:
            raise IndexError(f"StoreMatrix is 2-D; got {len(key)} indices.")
        rows = np.arange(len(self.ids))[rows_key]
        if isinstance(cols_key, slice):  # no index array: n_features can be millions
            span = range(self.n_features)[cols_key]
            cols = np.asarray(span) if span.step != 1 and len(span) > 1 else span
        else:
            cols = np.arange(self.n_features)[cols_key]
        if isinstance(cols, range):
            lo = hi = cols.start if len(cols) else 0
            hi += len(cols)
        else:
            flat = np.atleast_1d(cols)
            lo, hi = (int(flat.min()), int(flat.max()) + 1) if len(flat) else (0, 0)
        if self._store is None:
            self._store = FeatureStore(self.path.parent, self.path.name)
        store = self._store
        out = store._read(store._index(), self.ids[np.atleast_1d(rows)], lo, hi)
        if not isinstance(cols, range):
            out = out[:, np.atleast_1d(cols) - lo]
            if np.ndim(cols) == 0:
                out = out[:, 0]
        return out[0] if np.ndim(rows) == 0 else out


def zc_store_name(strength: float, fraction: float, layer: str | None = None) -> str:
    """Feature-store name of zc (or of a U-Net layer's activations) at a noise level and stage.

    Parameters
    ----------
    strength : float
        Noise level: the fraction of the DDIM trajectory z was noised to (0, 1].
    fraction : float
        Denoising stage: the fraction of those steps run (0, 1].
    layer : str, optional
        U-Net module name; None for zc itself.

    Examples
    --------
    >>> zc_store_name(0.5, 1.0)
    'zc_s0.50_f1.00'
    >>> zc_store_name(0.5, 0.25, "mid_block")
    'unet_mid_block_s0.50_f0.25'
    """
    levels = f"s{strength:.2f}_f{fraction:.2f}"
    return f"zc_{levels}" if layer is None else f"unet_{layer}_{levels}"


def fixed_batches(nsd_ids: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Split the unique ``nsd_ids`` (first-seen order) into consecutive batches.

    The batches depend on the ids alone, never on what is stored already, so a
    resumed run computes every entry in the same batch as an uninterrupted one
    and gets the same bits (a batch of another size or content can differ in the
    last bits of float32 results).
    """
    unique = np.array(list(dict.fromkeys(int(i) for i in nsd_ids)), dtype=np.int64)
    return [unique[i : i + batch_size] for i in range(0, len(unique), batch_size)]


def fill_store(
    store: FeatureStore,
    nsd_ids: Sequence[int],
    compute: Callable[[np.ndarray], np.ndarray],
    batch_size: int = 16,
    progress: bool = False,
) -> int:
    """Compute and store the entries of ``nsd_ids`` that are missing, batch by batch.

    Parameters
    ----------
    store : FeatureStore
    nsd_ids : sequence of int
    compute : callable
        ``compute(ids) -> array`` of shape (len(ids), ...).
    batch_size : int
    progress : bool

    Returns
    -------
    n_computed : int
    """
    from tqdm.auto import tqdm

    # Whole fixed batches are computed (see fixed_batches): resuming gives the same bits.
    todo = [ids for ids in fixed_batches(nsd_ids, batch_size) if len(store.missing(ids))]
    for ids in tqdm(todo, disable=not progress, desc=f"features {store.name}"):
        store.put(ids, compute(ids))
    n_computed = sum(len(ids) for ids in todo)
    logger.info("feature %s: %d computed, %d stored", store.name, n_computed, len(store))
    return n_computed


def extract_features(
    ldm,
    folder: str | os.PathLike,
    nsd_ids: Sequence[int],
    images: Callable[[np.ndarray], np.ndarray] | None = None,
    captions: Callable[[np.ndarray], list[list[str]]] | None = None,
    features: Sequence[str] = ("z", "c"),
    z_size: int = FeaturesConfig.z_size,
    z_posterior: str = FeaturesConfig.z_posterior,
    seed: int = 42,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, FeatureStore]:
    """Fill the ``z`` and/or ``c`` stores for ``nsd_ids``, resuming what is there.

    Parameters
    ----------
    ldm : LatentDiffusion
    folder : path-like
        Root of the feature stores (``folder/z``, ``folder/c``).
    nsd_ids : sequence of int
    images : callable, optional
        ``images(ids) -> uint8 (n, H, W, 3)``, e.g. ``partial(load_stimulus_images, layout)``;
        needed for ``"z"``.
    captions : callable, optional
        ``captions(ids) -> list of list of str``; needed for ``"c"``.
    features : sequence of {"z", "c"}
    z_size, z_posterior
        See :func:`encode_image_latents`. Both default to the paper's: 320 px
        (``FeaturesConfig.z_size``; z of 4 × z_size/8 × z_size/8) and a posterior
        sample (``FeaturesConfig.z_posterior``). With ``"sample"``, each
        image's seed is derived from (``seed``, nsd_id), so the store does not depend
        on batching.
    seed : int
    batch_size : int
    progress : bool

    Returns
    -------
    stores : dict of str to FeatureStore
    """
    from brainldm._utils import check_choices
    from brainldm.features._extract import encode_image_latents, encode_text_embeddings

    check_choices("features", features, ("z", "c"))
    stores = {}
    if "z" in features:
        if images is None:
            raise ValueError("features includes 'z': pass images=...")
        meta = {"model": ldm.fingerprint, "size": z_size, "posterior": z_posterior, "seed": seed}
        store = FeatureStore(folder, "z", meta)

        def z_of(ids):
            seeds = [int(np.random.SeedSequence([seed, int(i)]).generate_state(1)[0]) for i in ids]
            return encode_image_latents(ldm, images(ids), z_size, z_posterior, seeds, batch_size)

        fill_store(store, nsd_ids, z_of, batch_size, progress)
        stores["z"] = store
    if "c" in features:
        if captions is None:
            raise ValueError("features includes 'c': pass captions=...")
        store = FeatureStore(folder, "c", {"model": ldm.fingerprint})
        fill_store(store, nsd_ids, lambda ids: encode_text_embeddings(ldm, captions(ids)),
                   batch_size, progress)  # fmt: skip
        stores["c"] = store
    return stores
