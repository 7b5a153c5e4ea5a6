"""Targets given as distinct rows and the row of each sample, never expanded whole.

A decoder's targets repeat with the images: NSD shows each training image up
to three times, so c of ~25,000 trials × 59,136 values (5.9 GB in float32) is
8,859 distinct rows (2.1 GB) picked by an index. The ridge reads its targets a
batch of columns at a time, so :class:`IndexedRows` expands one batch only.
"""

from __future__ import annotations

import numpy as np


class IndexedRows:
    """Rows ``values[index]`` of a 2-D array, expanded a block at a time.

    Parameters
    ----------
    values : ndarray of shape (n_distinct, n_columns)
        The distinct rows (e.g. one per image).
    index : ndarray of int, shape (n_rows,)
        Row of ``values`` for each row of this array (e.g. each trial).

    Examples
    --------
    >>> Y = IndexedRows(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1, 0, 1]))
    >>> Y.shape
    (3, 2)
    >>> Y[:, 1:].ravel().tolist()
    [4.0, 2.0, 4.0]
    """

    def __init__(self, values: np.ndarray, index: np.ndarray) -> None:
        values = np.asarray(values)
        index = np.asarray(index)
        if values.ndim != 2:
            raise ValueError(f"values must be 2-D (n_distinct, n_columns), got {values.shape}.")
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"index must be 1-D integers, got {index.dtype} {index.shape}.")
        if len(index) and (index.min() < 0 or index.max() >= len(values)):
            raise ValueError(
                f"index must lie in [0, {len(values)}), got {index.min()}..{index.max()}."
            )
        self.values, self.index = values, index

    @property
    def shape(self) -> tuple[int, int]:
        """(n_rows, n_columns)."""
        return (len(self.index), self.values.shape[1])

    @property
    def dtype(self) -> np.dtype:
        """The dtype of ``values``."""
        return self.values.dtype

    ndim = 2

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        # Select the columns first (a view for a slice), then expand their rows.
        return self.values[:, cols][self.index[rows]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.values[self.index]
        return out if dtype is None else out.astype(dtype, copy=False)
