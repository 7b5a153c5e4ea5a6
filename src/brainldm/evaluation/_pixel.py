"""Low-level image metrics: PixCorr and SSIM, as MindEye and Brain-Diffuser compute them.

Both take images that are already at the evaluation size (425 × 425 in the
peers' code; :func:`brainldm.evaluation.prepare_pixel_images` does the
protocol's resizing). Pure numpy/scipy; scikit-image is only the reference in
the tests.
"""

from __future__ import annotations

import numpy as np

#: ``skimage.color.rgb2gray`` weights (ITU-R BT.709 luma, as scikit-image writes them).
GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)


def _as_float_images(images, name: str) -> np.ndarray:
    """uint8 → float64 in [0, 1]; floating arrays are kept in their own precision."""
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be uint8 or floating point in [0, 1]; got dtype {arr.dtype}.")
    return arr


def _check_pair(originals, reconstructions):
    """Return (originals (n, H, W, 3), reconstructions (n, K, H, W, 3)) as float arrays."""
    orig = _as_float_images(originals, "originals")
    rec = _as_float_images(reconstructions, "reconstructions")
    if orig.ndim != 4 or orig.shape[-1] != 3:
        raise ValueError(f"originals must have shape (n_images, H, W, 3); got {orig.shape}.")
    if rec.ndim == 4:
        rec = rec[:, None]
    if rec.ndim != 5 or rec.shape[-1] != 3:
        raise ValueError(
            "reconstructions must have shape (n_images, H, W, 3) or "
            f"(n_images, n_samples, H, W, 3); got {np.shape(reconstructions)}."
        )
    if rec.shape[0] != orig.shape[0]:
        raise ValueError(
            f"reconstructions has {rec.shape[0]} images but originals has {orig.shape[0]}; "
            "they need one entry per test image, in the same order."
        )
    if rec.shape[2:4] != orig.shape[1:3]:
        raise ValueError(
            f"reconstructions are {rec.shape[2]}×{rec.shape[3]} but originals are "
            f"{orig.shape[1]}×{orig.shape[2]}; resize both to the evaluation size first "
            "(prepare_pixel_images)."
        )
    if orig.shape[0] < 1:
        raise ValueError("need at least 1 image; got 0.")
    return orig, rec


def rgb_to_gray(images) -> np.ndarray:
    """Luminance as ``skimage.color.rgb2gray``: ``0.2125 R + 0.7154 G + 0.0721 B``.

    Parameters
    ----------
    images : array of shape (..., 3)
        uint8 (scaled to [0, 1] in float64) or floating point (kept in its precision).

    Returns
    -------
    gray : ndarray of shape (...)
    """
    rgb = _as_float_images(images, "images")
    if rgb.shape[-1] != 3:
        raise ValueError(f"images must have 3 channels on the last axis; got shape {rgb.shape}.")
    return rgb @ np.asarray(GRAY_WEIGHTS, dtype=rgb.dtype)


def pixcorr(originals, reconstructions) -> np.ndarray:
    """Pixel-wise Pearson correlation (PixCorr) of each original with its reconstruction.

    Parameters
    ----------
    originals : array of shape (n_images, H, W, 3)
        uint8, or floats in [0, 1].
    reconstructions : array of shape (n_images, H, W, 3) or (n_images, n_samples, H, W, 3)
        Same size and row order.

    Returns
    -------
    pixcorr : ndarray of shape (n_images,)
        r between all ``3 H W`` values of the two images (RGB flattened into one
        vector), averaged over samples. NaN for a constant image. Computed in
        float64, as ``np.corrcoef`` in the peers' code.
    """
    orig, rec = _check_pair(originals, reconstructions)
    n, k = rec.shape[:2]
    x = orig.reshape(n, 1, -1).astype(np.float64)
    y = rec.reshape(n, k, -1).astype(np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.einsum("nkd,nkd->nk", np.broadcast_to(x, y.shape), y) / np.sqrt(
            np.einsum("nkd,nkd->nk", x, x) * np.einsum("nkd,nkd->nk", y, y)
        )
    return r.mean(axis=1)


def _ssim_gray(im1: np.ndarray, im2: np.ndarray, sigma: float, data_range: float) -> np.ndarray:
    """SSIM of stacks of gray images (m, H, W), one value per image.

    The arithmetic of ``skimage.metrics.structural_similarity`` with
    ``gaussian_weights=True, use_sample_covariance=False``: a Gaussian window
    truncated at 3.5 σ (11 taps for σ = 1.5), reflect padding, population
    covariances, K1 = 0.01, K2 = 0.03, and a border of (window − 1) / 2 pixels
    cropped before the mean.
    """
    from scipy.ndimage import gaussian_filter

    truncate = 3.5
    radius = int(truncate * sigma + 0.5)
    win_size = 2 * radius + 1
    if min(im1.shape[1:]) < win_size:
        raise ValueError(
            f"images of {im1.shape[1]}×{im1.shape[2]} are smaller than the SSIM window "
            f"({win_size} px for sigma={sigma})."
        )

    def filt(a):
        return gaussian_filter(a, sigma=(0, sigma, sigma), mode="reflect", truncate=truncate)

    ux, uy = filt(im1), filt(im2)
    uxx, uyy, uxy = filt(im1 * im1), filt(im2 * im2), filt(im1 * im2)
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    a1, a2 = 2 * ux * uy + c1, 2 * vxy + c2
    b1, b2 = ux**2 + uy**2 + c1, vx + vy + c2
    s = (a1 * a2) / (b1 * b2)
    pad = (win_size - 1) // 2
    return s[:, pad:-pad, pad:-pad].mean(axis=(1, 2), dtype=np.float64)


def ssim(
    originals,
    reconstructions,
    *,
    sigma: float = 1.5,
    data_range: float = 1.0,
    chunk_size: int = 32,
) -> np.ndarray:
    """Structural similarity (SSIM) of the grayscale images, as MindEye/Brain-Diffuser.

    Parameters
    ----------
    originals : array of shape (n_images, H, W, 3)
        uint8, or floats in [0, 1].
    reconstructions : array of shape (n_images, H, W, 3) or (n_images, n_samples, H, W, 3)
    sigma : float
        Standard deviation of the Gaussian window (1.5, Wang et al. 2004).
    data_range : float
        Value range of the images (1.0).
    chunk_size : int
        Images filtered at once (memory only).

    Returns
    -------
    ssim : ndarray of shape (n_images,)
        Mean SSIM over the (border-cropped) image, averaged over samples.

    Notes
    -----
    Both images are converted to gray with :func:`rgb_to_gray` first: the
    peers pass ``multichannel=True``, which current scikit-image ignores, so
    their score is single-channel. The arithmetic stays in the input precision
    (float32 for MindEye's tensors, float64 for uint8 input, as in
    Brain-Diffuser), as scikit-image does.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive; got {sigma!r}.")
    orig, rec = _check_pair(originals, reconstructions)
    n, k = rec.shape[:2]
    dtype = np.result_type(orig.dtype, rec.dtype)
    gray_orig = rgb_to_gray(orig.astype(dtype, copy=False))  # (n, H, W)
    gray_rec = rgb_to_gray(rec.astype(dtype, copy=False)).reshape(n * k, *rec.shape[2:4])
    pairs = np.repeat(np.arange(n), k)
    out = np.empty(n * k, dtype=np.float64)
    for start in range(0, n * k, chunk_size):
        sl = slice(start, start + chunk_size)
        out[sl] = _ssim_gray(gray_rec[sl], gray_orig[pairs[sl]], sigma, data_range)
    return out.reshape(n, k).mean(axis=1)
