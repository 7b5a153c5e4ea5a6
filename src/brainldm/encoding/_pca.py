"""Exact PCA of a feature space too large for memory, in one pass over its columns.

The paper reduces each feature space to 6,400 dimensions by PCA fitted on the
training images only (§3.5), after standardising each feature on them. At NSD
scale a space has ~8,859 training and 982 test images, but 10^5-2.6×10^6
features per image, so X never fits in memory while n_train² float64 does
(~630 MB). When there are more features than training images we therefore
accumulate, over blocks of feature columns, the Gram matrix
G = Xs_train Xs_train^T (n_train × n_train) and the cross-Gram
K = Xs_test Xs_train^T (n_test × n_train) of the standardised data, and
eigendecompose G: with G = U Λ U^T, the training scores are U √Λ and the
test scores K U / √Λ. This is exact (no randomisation), reads every column
once, holds about n_train² + n_test·n_train float64 plus one block, and costs
about n_train·(n_train + 2·n_test)·n_features flops for G (symmetric, so half a
product) and K, then O(n_train²·k) for the top-k eigenvectors. The scores
equal those of sklearn's exact ``PCA(svd_solver="full")`` fitted on the
standardised training rows, up to the sign of each component (here fixed:
each component's largest-|value| training score is positive). Components
beyond the rank of the centred training data (eigenvalue
≤ eps·max(n_train, n_features)·λ_max) get 0 scores, where sklearn's would be
arbitrary directions of its null space.

Columns are read as ``X[:, a:b]``: a store chunked one image per chunk makes
every block read decompress every chunk, so chunk along features as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from brainldm._utils import check_bool, check_positive_int

#: Default bytes of the float64 block (n_train + n_test rows) read at a time.
BLOCK_BUDGET_BYTES = 256 * 2**20


@dataclass(frozen=True, eq=False)
class StreamedPCA:
    """A feature space standardised on the training rows and reduced by PCA fitted on them.

    Attributes
    ----------
    train : ndarray of float32, shape (n_train, k)
        Component scores of the training rows (the variances are kept).
    test : ndarray of float32, shape (n_test, k)
        Component scores of the test rows.
    explained_variance : ndarray of float64, shape (k,)
        Variance (ddof=1) of each column of ``train``, in decreasing order for a
        PCA; as sklearn's ``explained_variance_``.
    total_variance : float
        Summed variance (ddof=1) of all standardised training features (the
        number of non-constant features × n_train / (n_train - 1)).
    method : {"gram", "covariance", "none"}
        ``"gram"`` (n_features > n_train), ``"covariance"`` (n_features ≤ n_train)
        or ``"none"`` (no PCA: ``train`` and ``test`` are the standardised features).
    block_size : int
        Feature columns read at a time.
    """

    train: np.ndarray
    test: np.ndarray
    explained_variance: np.ndarray
    total_variance: float
    method: str
    block_size: int

    @property
    def n_components(self) -> int:
        """Dimensions kept (k)."""
        return int(self.train.shape[1])

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        """Return the fraction of ``total_variance`` of each component, shape (k,)."""
        if self.total_variance == 0:
            return np.zeros_like(self.explained_variance)
        return self.explained_variance / self.total_variance


def streamed_pca(
    X_train: Any,
    X_test: Any,
    n_components: int | None,
    block_size: int | None = None,
    progress: bool = False,
) -> StreamedPCA:
    """Standardise each feature on the training rows, then exact PCA fitted on them; apply to both.

    Each feature is centred and scaled by the training rows' mean and standard
    deviation (ddof=0; a constant feature is scaled by 1, so it stays 0), the
    same for ``X_test``. Every column of both inputs is read once, a block of
    columns at a time, and converted to float64.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
        Anything 2-D with ``.shape`` whose ``X[:, a:b]`` returns an array (numpy
        array, h5py dataset, lazy on-disk view); any float dtype (e.g. float16).
    X_test : array-like of shape (n_test, n_features)
        As ``X_train``; may have no rows.
    n_components : int or None
        Dimensions kept; k = min(n_components, n_train, n_features). None, or
        at least n_features, returns the standardised features (no PCA).
    block_size : int, optional
        Feature columns read at a time; by default as many as fit a float64
        block of n_train + n_test rows in :data:`BLOCK_BUDGET_BYTES` (256 MiB).
    progress : bool
        A progress bar over blocks.

    Returns
    -------
    pca : StreamedPCA
        Scores of shape (n_train, k) and (n_test, k), float32.

    Notes
    -----
    Memory: n_features > n_train ("gram") holds G (n_train²), K
    (n_test·n_train) and then U_k (n_train·k), float64, plus one block.
    n_features ≤ n_train ("covariance") holds the standardised data, float64
    ((n_train + n_test)·n_features ≤ (n_train + n_test)·n_train), and
    Xs^T Xs (n_features² ≤ n_train²): within ~2× of the same bound, and it
    keeps the one pass. Without PCA the output itself (float32) is held.
    """
    shape_train = _shape_2d("X_train", X_train)
    shape_test = _shape_2d("X_test", X_test)
    (n_train, n_features), n_test = shape_train, shape_test[0]
    if shape_test[1] != n_features:
        raise ValueError(
            f"X_train and X_test must have the same number of features (columns); "
            f"got X_train of shape {shape_train} and X_test of shape {shape_test}."
        )
    if n_train < 2:
        raise ValueError(f"X_train needs at least 2 rows (training images); got {n_train}.")
    if n_features < 1:
        raise ValueError(f"X_train needs at least 1 feature (column); got shape {shape_train}.")
    if n_components is not None:
        n_components = check_positive_int("n_components", n_components)
    if block_size is None:
        block_size = max(1, BLOCK_BUDGET_BYTES // (8 * (n_train + n_test)))
    block_size = min(check_positive_int("block_size", block_size), n_features)
    check_bool("progress", progress)

    blocks = _standardised_blocks(X_train, X_test, block_size, progress)
    if n_components is None or n_components >= n_features:
        return _no_pca(blocks, n_train, n_test, n_features, block_size)
    k = min(n_components, n_train, n_features)
    if n_features > n_train:
        return _gram_pca(blocks, n_train, n_test, n_features, k, block_size)
    return _covariance_pca(blocks, n_train, n_test, n_features, k, block_size)


def _shape_2d(name: str, X: Any) -> tuple[int, int]:
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(
            f"{name} must be 2-D, (rows, features), with .shape and {name}[:, a:b] "
            f"(a numpy array, h5py dataset or lazy view); got {type(X).__name__} "
            f"with shape {shape}."
        )
    return int(shape[0]), int(shape[1])


def _read(name: str, X: Any, a: int, b: int, n_rows: int) -> np.ndarray:
    """Columns a:b of X as a new C-ordered float64 array (never a view of the caller's data)."""
    block = np.array(X[:, a:b], dtype=np.float64, order="C", copy=True)
    if block.shape != (n_rows, b - a):
        raise ValueError(
            f"{name}[:, {a}:{b}] returned shape {block.shape}; expected {(n_rows, b - a)}."
        )
    return block


def _standardised_blocks(
    X_train: Any, X_test: Any, block_size: int, progress: bool
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield ``(a, b, Bt, Be)``: columns a:b of X_train, X_test standardised, float64.

    Bt has shape (n_train, b - a) and Be (n_test, b - a), both C-ordered.
    """
    from tqdm.auto import tqdm

    (n_train, n_features), n_test = X_train.shape, X_test.shape[0]
    starts = range(0, n_features, block_size)
    for a in tqdm(starts, disable=not progress, desc="PCA", unit="block"):
        b = min(a + block_size, n_features)
        Bt = _read("X_train", X_train, a, b, n_train)
        Be = _read("X_test", X_test, a, b, n_test) if n_test else np.empty((0, b - a))
        mean = Bt.mean(axis=0)
        if not np.isfinite(mean).all():
            raise ValueError(f"X_train has NaN or inf values in columns {a}:{b}.")
        Bt -= mean
        # A second centring removes the mean's rounding error: a constant column becomes
        # exactly 0 (so std 0) instead of a constant ±1e-16 that standardising blows up.
        shift = Bt.mean(axis=0)
        Bt -= shift
        std = np.sqrt(np.einsum("ij,ij->j", Bt, Bt) / n_train)
        std[std == 0] = 1.0  # constant features stay 0
        Bt /= std
        Be -= mean
        Be -= shift
        Be /= std
        if not np.isfinite(Be).all():
            raise ValueError(f"X_test has NaN or inf values in columns {a}:{b}.")
        yield a, b, Bt, Be


def _rank_tolerance(n_train: int, n_features: int) -> float:
    """Eigenvalues ≤ this × the largest are rounding noise (beyond the rank of the data)."""
    return float(np.finfo(np.float64).eps * max(n_train, n_features))


def _top_eigh(A: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenpairs of symmetric A (upper triangle read, A overwritten), descending."""
    from scipy.linalg import eigh

    m = A.shape[0]
    if k > m // 4:  # most of the spectrum (6,400 of 8,859): divide and conquer on all of it
        lam, V = eigh(A, lower=False, driver="evd", overwrite_a=True, check_finite=False)
        lam, V = lam[m - k :], V[:, m - k :]
    else:
        lam, V = eigh(A, lower=False, subset_by_index=(m - k, m - 1), overwrite_a=True,
                      check_finite=False)  # fmt: skip
    return lam[::-1].copy(), np.asfortranarray(V[:, ::-1])


def _positive_peak_signs(T: np.ndarray) -> np.ndarray:
    """Signs (shape (k,)) that make each column's largest-|value| entry positive."""
    peak = T[np.argmax(np.abs(T), axis=0), np.arange(T.shape[1])]
    return np.where(peak < 0, -1.0, 1.0)


def _kept(lam: np.ndarray, n_train: int, n_features: int) -> np.ndarray:
    """Mask of eigenvalues above the rank tolerance (descending ``lam``)."""
    top = max(float(lam[0]), 0.0) if lam.size else 0.0
    return lam > _rank_tolerance(n_train, n_features) * top


def _gram_pca(blocks, n_train, n_test, n_features, k, block_size) -> StreamedPCA:
    from scipy.linalg.blas import dgemm, dsyrk

    G = np.zeros((n_train, n_train), order="F")
    K = np.zeros((n_test, n_train), order="F")
    for _, _, Bt, Be in blocks:
        # In place (Fortran-ordered c): G += Bt Bt^T (upper triangle), K += Be Bt^T.
        G = dsyrk(1.0, Bt.T, beta=1.0, c=G, trans=1, lower=0, overwrite_c=1)
        if n_test:
            K = dgemm(1.0, Be.T, Bt.T, beta=1.0, c=K, trans_a=1, overwrite_c=1)
    total = float(np.trace(G))
    lam, U = _top_eigh(G, k)
    del G  # overwritten by eigh
    keep = _kept(lam, n_train, n_features)
    root = np.sqrt(np.where(keep, lam, 1.0))
    U *= _positive_peak_signs(U)
    test = K @ U
    del K
    test *= np.where(keep, 1.0 / root, 0.0)  # K U / √λ
    U *= np.where(keep, root, 0.0)  # U √λ
    return StreamedPCA(
        train=U.astype(np.float32), test=test.astype(np.float32),
        explained_variance=np.where(keep, lam, 0.0) / (n_train - 1),
        total_variance=total / (n_train - 1), method="gram", block_size=block_size,
    )  # fmt: skip


def _covariance_pca(blocks, n_train, n_test, n_features, k, block_size) -> StreamedPCA:
    from scipy.linalg.blas import dsyrk

    # n_features ≤ n_train: the standardised data fits the Gram route's bound, so keep it.
    Xs_train = np.empty((n_train, n_features), order="F")
    Xs_test = np.empty((n_test, n_features), order="F")
    for a, b, Bt, Be in blocks:
        Xs_train[:, a:b] = Bt
        Xs_test[:, a:b] = Be
    C = dsyrk(1.0, Xs_train, trans=1, lower=0)  # Xs^T Xs, upper triangle
    total = float(np.trace(C))
    lam, V = _top_eigh(C, k)
    del C
    keep = _kept(lam, n_train, n_features)
    V[:, ~keep] = 0.0
    train = Xs_train @ V
    signs = _positive_peak_signs(train)
    train *= signs
    test = (Xs_test @ V) * signs
    return StreamedPCA(
        train=train.astype(np.float32), test=test.astype(np.float32),
        explained_variance=np.where(keep, lam, 0.0) / (n_train - 1),
        total_variance=total / (n_train - 1), method="covariance", block_size=block_size,
    )  # fmt: skip


def _no_pca(blocks, n_train, n_test, n_features, block_size) -> StreamedPCA:
    train = np.empty((n_train, n_features), dtype=np.float32)
    test = np.empty((n_test, n_features), dtype=np.float32)
    variance = np.empty(n_features)
    for a, b, Bt, Be in blocks:
        train[:, a:b] = Bt
        test[:, a:b] = Be
        variance[a:b] = np.einsum("ij,ij->j", Bt, Bt) / (n_train - 1)
    return StreamedPCA(
        train=train, test=test, explained_variance=variance,
        total_variance=float(variance.sum()), method="none", block_size=block_size,
    )  # fmt: skip
