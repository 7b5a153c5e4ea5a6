"""Two-way identification and correlation distance, in numpy only.

Notation
--------
For test image i, ``o_i`` is the feature vector of the original (ground truth)
and ``g_ik`` that of its k-th reconstruction (sample), k = 1..K.
``r(a, b)`` is the Pearson correlation of two flattened feature vectors.

* ``"takagi"`` (the authors' ``identification.py``; seed_code.md §6): the
  anchor is the **original** i. Let ``M[i, j] = mean_k r(o_i, g_jk)``. Image i
  wins against image j ≠ i when ``M[i, i] > M[i, j]``. Its accuracy is its
  number of wins over the N − 1 other test images.
* ``"mindeye"`` and ``"braindiffuser"`` (MindEye's ``two_way_identification``,
  Brain-Diffuser's ``pairwise_corr_all``; peers.md §1.4): the anchor is the
  **reconstruction** j. It wins against image i ≠ j when
  ``r(o_i, g_jk) < r(o_j, g_jk)``. With K samples, each sample is scored on its
  own and the image's accuracy is the mean over its samples (with K = 1 this is
  exactly the peers' code).

In both, every comparison is strict: a tie is a loss, and so is a comparison
involving an undefined correlation (a constant feature vector). Chance is 0.5.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from brainldm._utils import check_option, check_positive_int

#: Orientation of the comparison for each protocol name.
IDENTIFICATION_PROTOCOLS = ("takagi", "mindeye", "braindiffuser")


@dataclass(frozen=True)
class IdentificationResult:
    """Per-image two-way identification accuracy.

    Attributes
    ----------
    accuracy_per_image : ndarray of shape (n_images,)
        Fraction of the ``n_images - 1`` other test images beaten, in the row
        order of the inputs (for ``"mindeye"``, averaged over samples).
    protocol : str
        ``"takagi"``, ``"mindeye"`` or ``"braindiffuser"``.
    n_samples : int
        Reconstructions per test image (K).
    feature_name : str or None
        Label of the features, e.g. ``"alexnet2"``.
    """

    accuracy_per_image: np.ndarray
    protocol: str
    n_samples: int
    feature_name: str | None = None

    @property
    def accuracy(self) -> float:
        """Mean accuracy over test images (chance 0.5)."""
        return float(np.mean(self.accuracy_per_image))

    @property
    def n_images(self) -> int:
        """Number of test images."""
        return int(self.accuracy_per_image.shape[0])


def _check_features(original_features, reconstructed_features, min_images: int = 2):
    """Validate shapes; return (original (n, d), reconstructed (n, K, d)) as arrays."""
    original = np.asarray(original_features)
    recon = np.asarray(reconstructed_features)
    if original.ndim != 2:
        raise ValueError(
            "original_features must have shape (n_images, n_features); "
            f"got shape {original.shape}. Flatten each image's features first."
        )
    if recon.ndim == 2:
        recon = recon[:, None, :]
    if recon.ndim != 3:
        raise ValueError(
            "reconstructed_features must have shape (n_images, n_features) or "
            f"(n_images, n_samples, n_features); got shape {recon.shape}."
        )
    if recon.shape[0] != original.shape[0]:
        raise ValueError(
            f"reconstructed_features has {recon.shape[0]} images but original_features has "
            f"{original.shape[0]}; they need one row per test image, in the same order."
        )
    if recon.shape[2] != original.shape[1]:
        raise ValueError(
            f"reconstructed_features has {recon.shape[2]} features per image but "
            f"original_features has {original.shape[1]}; they must come from the same layer."
        )
    if original.shape[0] < min_images:
        raise ValueError(
            f"two-way identification needs at least {min_images} test images; "
            f"got {original.shape[0]}."
        )
    if recon.shape[1] < 1 or original.shape[1] < 2:
        raise ValueError(
            "need at least 1 sample and 2 features per image; got "
            f"n_samples={recon.shape[1]}, n_features={original.shape[1]}."
        )
    for name, arr in (("original_features", original), ("reconstructed_features", recon)):
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values.")
    return original, recon


def _standardize(x: np.ndarray, dtype) -> np.ndarray:
    """Centre each row (last axis) and scale it to unit norm; constant rows become NaN.

    The dot product of two standardised rows is their Pearson correlation.
    """
    x = np.asarray(x)
    # Test constancy on the raw values: the centred row of a constant row need not be
    # exactly zero (the mean is rounded), which would normalise rounding noise.
    constant = x.max(axis=-1) == x.min(axis=-1)
    z = np.array(x, dtype=dtype, copy=True)
    z -= z.mean(axis=-1, keepdims=True)
    norm = np.sqrt(np.einsum("...i,...i->...", z, z))
    norm[constant] = np.nan
    z /= norm[..., None]
    return z


def _warn_undefined(n_constant: int, stacklevel: int = 3) -> None:
    if n_constant:
        warnings.warn(
            f"{n_constant} feature vector(s) are constant (zero variance); their "
            "correlations are undefined and every comparison involving them counts as a loss.",
            UserWarning,
            stacklevel=stacklevel,
        )


def two_way_identification(
    original_features,
    reconstructed_features,
    protocol: str = "takagi",
    *,
    feature_name: str | None = None,
    block_size: int = 128,
    dtype=np.float64,
) -> IdentificationResult:
    """Two-way identification accuracy of each test image, against all other test images.

    Parameters
    ----------
    original_features : array of shape (n_images, n_features)
        Flattened features of the original images, one row per test image.
    reconstructed_features : array of shape (n_images, n_samples, n_features)
        Features of the reconstructions, same row order. A 2-D array of shape
        (n_images, n_features) means one sample per image.
    protocol : {"takagi", "mindeye", "braindiffuser"}
        ``"takagi"``: anchored on the original, sample correlations averaged
        before comparing (the paper's code). ``"mindeye"`` (= ``"braindiffuser"``):
        anchored on the reconstruction, each sample scored then averaged. See
        the module notes for the exact definitions.
    feature_name : str, optional
        Stored in the result.
    block_size : int
        Test images per block of reconstructions; bounds memory to about
        ``8 * (n_images + block_size * n_samples) * n_features`` bytes.
    dtype : numpy dtype
        Precision of the correlations (float64; float32 halves memory for very
        wide features such as CLIP hidden states, at the cost of exact ties).

    Returns
    -------
    result : IdentificationResult
        ``accuracy_per_image`` of shape (n_images,); ``accuracy`` is its mean.

    Raises
    ------
    ValueError
        Mismatched numbers of images or features, fewer than 2 test images,
        non-finite features or an unknown protocol.

    Notes
    -----
    Comparisons are strict, so **ties count as losses** (as in MindEye and in
    the paper's code); so does any comparison with a constant feature vector,
    whose correlation is undefined (a warning says how many there are). Every
    other test image is a distractor: no random subsets. Accuracy is a multiple
    of ``1 / ((n_images - 1) * n_samples)``.

    The per-image accuracies are not independent (they share distractors), so
    a binomial test over all ``n_images * (n_images - 1)`` comparisons is
    optimistic; use :func:`bootstrap_ci` over images for an interval.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> original = rng.standard_normal((20, 50))
    >>> samples = original[:, None, :] + 0.5 * rng.standard_normal((20, 5, 50))
    >>> two_way_identification(original, samples).accuracy
    1.0
    """
    check_option("protocol", protocol, IDENTIFICATION_PROTOCOLS)
    block_size = check_positive_int("block_size", block_size)
    original, recon = _check_features(original_features, reconstructed_features)
    n_images, n_samples, n_features = recon.shape

    z_orig = _standardize(original, dtype)  # (n_images, n_features)
    n_constant = int(np.isnan(z_orig[:, 0]).sum())
    # r[i, j, k] = corr(o_i, g_jk), computed for a block of reconstructions j at a time.
    if protocol == "takagi":
        mean_r = np.empty((n_images, n_images), dtype=dtype)  # M[i, j]
    else:
        wins = np.empty((n_images, n_samples), dtype=np.int64)
    for start in range(0, n_images, block_size):
        stop = min(start + block_size, n_images)
        z_rec = _standardize(recon[start:stop], dtype)  # (b, K, d)
        n_constant += int(np.isnan(z_rec[:, :, 0]).sum())
        r = (z_orig @ z_rec.reshape(-1, n_features).T).reshape(n_images, stop - start, n_samples)
        if protocol == "takagi":
            mean_r[:, start:stop] = r.mean(axis=2)
        else:
            own = r[np.arange(start, stop), np.arange(stop - start)]  # (b, K): r(o_j, g_jk)
            # Strict '<': ties lose; r[j, j] < r[j, j] is False, so j never beats itself.
            wins[start:stop] = np.sum(r < own[None], axis=0)
    _warn_undefined(n_constant)

    if protocol == "takagi":
        own = np.diag(mean_r)
        # i beats j when M[i, i] > M[i, j] (strict); the diagonal is never a win.
        accuracy = np.sum(mean_r < own[:, None], axis=1) / (n_images - 1)
    else:
        accuracy = (wins / (n_images - 1)).mean(axis=1)  # per-sample accuracy, then the mean
    return IdentificationResult(
        accuracy_per_image=accuracy.astype(np.float64),
        protocol=protocol,
        n_samples=n_samples,
        feature_name=feature_name,
    )


def correlation_distance(original_features, reconstructed_features, *, dtype=np.float64):
    """Correlation distance ``1 - r`` between each original and its own reconstruction.

    The EffNet-B and SwAV scores of MindEye and Brain-Diffuser
    (``scipy.spatial.distance.correlation``; lower is better).

    Parameters
    ----------
    original_features : array of shape (n_images, n_features)
    reconstructed_features : array of shape (n_images, n_samples, n_features)
        Or (n_images, n_features) for one sample per image.
    dtype : numpy dtype
        Precision of the computation.

    Returns
    -------
    distance : ndarray of shape (n_images,)
        ``1 - r(o_i, g_ik)``, averaged over the samples k. NaN where a feature
        vector is constant.
    """
    original, recon = _check_features(original_features, reconstructed_features, min_images=1)
    z_orig = _standardize(original, dtype)
    z_rec = _standardize(recon, dtype)
    r = np.einsum("id,ikd->ik", z_orig, z_rec)
    _warn_undefined(int(np.isnan(r).any(axis=1).sum()))
    return (1.0 - r).mean(axis=1).astype(np.float64)
