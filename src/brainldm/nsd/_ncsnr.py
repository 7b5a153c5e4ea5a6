"""Data quality: NSD's noise-ceiling SNR (ncsnr) of each voxel, read or computed.

NSD ships, beside each subject's betas, ``ncsnr.nii.gz`` (func1pt8mm) and
``{lh,rh}.ncsnr.mgh`` (fsaverage): the ratio of the signal's to the noise's
standard deviation of each voxel's single-trial betas, estimated from the
images shown three times (Allen et al., 2022, Methods, "Noise ceiling").
:func:`load_ncsnr` reads them; :func:`noise_ceiling_snr` computes the same
quantity from betas (the synthetic NSD writes its ncsnr with it).
"""

from __future__ import annotations

import numpy as np

from brainldm.nsd._layout import BETA_FORMATS, HEMISPHERES, NSDLayout

#: Trials an image needs to enter the noise estimate: NSD uses the images shown three times.
NSD_MIN_REPEATS = 3


def noise_ceiling_snr(
    betas: np.ndarray,
    nsd_ids: np.ndarray,
    sessions: np.ndarray | None = None,
    min_repeats: int = NSD_MIN_REPEATS,
) -> np.ndarray:
    """Noise-ceiling SNR of each voxel, as NSD defines it.

    With each voxel's betas z-scored within each session (so their variance is
    1), the noise variance is the variance across an image's trials (``ddof=1``)
    averaged over the images with at least ``min_repeats`` trials; the signal
    variance is what remains of 1, rectified at 0::

        noise_sd  = sqrt(mean over images of var(trials of the image, ddof=1))
        signal_sd = sqrt(max(0, 1 - noise_sd²))
        ncsnr     = signal_sd / noise_sd

    This is NSD's ``ncsnr`` (Allen et al., 2022, Methods, "Noise ceiling": betas
    z-scored per session, the images with all three trials). Z-scoring here
    divides by the standard deviation with ``ddof=0``, as
    :func:`~brainldm.nsd.zscore_rows_inplace` (NSD's MATLAB ``zscore`` uses
    ``ddof=1``: a relative difference of 1/(2 × trials per session) in the noise
    sd, 0.07 % with 750 trials).

    Parameters
    ----------
    betas : ndarray of shape (n_trials, n_voxels)
        Single trials, in any unit (they are z-scored here); NaN entries count
        as the session mean.
    nsd_ids : array-like of int, shape (n_trials,)
        Image of each trial.
    sessions : array-like of int, shape (n_trials,), optional
        Session of each trial; z-scoring is within each session. Default: all
        trials are one session.
    min_repeats : int
        Trials an image needs to enter the noise estimate (NSD: 3).

    Returns
    -------
    ncsnr : ndarray of float32, shape (n_voxels,)
        ≥ 0. A voxel without variance in every session (e.g. outside the brain)
        gets 0.

    Raises
    ------
    ValueError
        If the shapes disagree, or no image has ``min_repeats`` trials.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ids = np.repeat(np.arange(2000), 3)  # 2,000 images, 3 trials each
    >>> signal = rng.standard_normal((2000, 2))[ids] * [2.0, 0.5]
    >>> ncsnr = noise_ceiling_snr(signal + rng.standard_normal(signal.shape), ids)
    >>> np.round(ncsnr, 1)  # the planted signal sd / noise sd: 2.0 and 0.5
    array([2. , 0.5], dtype=float32)
    """
    from brainldm._utils import check_number
    from brainldm.nsd._betas import zscore_rows_inplace

    X = np.array(betas, dtype=np.float64)  # a copy: z-scored in place below
    ids = np.asarray(nsd_ids)
    if X.ndim != 2 or ids.shape != (len(X),):
        raise ValueError(
            f"betas must have shape (n_trials, n_voxels) and nsd_ids (n_trials,); got "
            f"{X.shape} and {ids.shape}."
        )
    check_number("min_repeats", min_repeats, low=2, integer=True)
    runs = np.zeros(len(X), dtype=int) if sessions is None else np.asarray(sessions)
    if runs.shape != ids.shape:
        raise ValueError(f"sessions has shape {runs.shape}; nsd_ids has {ids.shape}.")
    _, image_of, counts = np.unique(ids, return_inverse=True, return_counts=True)
    repeated = counts >= min_repeats
    if not repeated.any():
        raise ValueError(
            f"no image has {min_repeats} or more trials (at most {counts.max(initial=0)}); "
            "the noise cannot be estimated."
        )
    for session in np.unique(runs):
        rows = np.flatnonzero(runs == session)
        X[rows] = zscore_rows_inplace(X[rows])
    # The trials of the repeated images, grouped by image (sorted, so each image's
    # trials are one run of rows).
    order = np.flatnonzero(repeated[image_of])
    order = order[np.argsort(image_of[order], kind="stable")]
    X = X[order]
    n = counts[repeated][:, None].astype(float)
    starts = np.concatenate([[0], np.cumsum(counts[repeated])[:-1]])
    sums = np.add.reduceat(X, starts, axis=0)
    squares = np.add.reduceat(X**2, starts, axis=0)
    variance = (squares - sums**2 / n) / (n - 1)  # across an image's trials, ddof=1
    noise_var = np.maximum(variance, 0).mean(axis=0)
    signal_sd = np.sqrt(np.maximum(0.0, 1.0 - noise_var))
    noise_sd = np.sqrt(noise_var)
    with np.errstate(divide="ignore", invalid="ignore"):
        ncsnr = np.where(noise_sd > 0, signal_sd / noise_sd, 0.0)
    return ncsnr.astype(np.float32)


def load_ncsnr(layout: NSDLayout, subject: int, fmt: str = "hdf5") -> np.ndarray:
    """NSD's noise-ceiling SNR of every voxel (or fsaverage vertex) of a subject.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
    fmt : {"hdf5", "nifti", "fsaverage"}
        The betas it goes with: ``ncsnr.nii.gz`` on the func1pt8mm grid for
        ``"hdf5"`` and ``"nifti"``; ``lh.ncsnr.mgh`` and ``rh.ncsnr.mgh`` for
        ``"fsaverage"``.

    Returns
    -------
    ncsnr : ndarray of float32
        Shape (X, Y, Z) in NIfTI axis order, or (n_vertices_lh + n_vertices_rh,).

    Raises
    ------
    FileNotFoundError
        Naming the missing file and its NSD download.
    ValueError
        If a file does not hold one value per voxel or vertex.
    """
    import nibabel as nib

    from brainldm._utils import check_option

    check_option("fmt", fmt, BETA_FORMATS)
    hemis = HEMISPHERES if fmt == "fsaverage" else ("lh",)
    parts = []
    for hemi in hemis:
        path = layout.require(layout.ncsnr(subject, fmt, hemi))
        data = np.asarray(nib.load(path).get_fdata(dtype=np.float32))
        if fmt == "fsaverage":
            data = data.reshape(-1)  # MGH surface data: (n_vertices, 1, 1)
        else:
            if data.ndim == 4 and data.shape[3] == 1:
                data = data[..., 0]
            if data.ndim != 3:
                raise ValueError(f"{str(path)!r} holds an array of shape {data.shape}; "
                                 "expected one value per voxel (X, Y, Z).")  # fmt: skip
        parts.append(data)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def median_ncsnr(values: np.ndarray | None) -> float | None:
    """The median of finite ncsnr values; None when absent or none is finite."""
    if values is None:
        return None
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else None
