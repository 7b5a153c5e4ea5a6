"""Slow, loop-based references for the evaluation metrics (used by tests and the benchmark).

Each follows the peers' code line by line: Takagi's ``identification.py``,
MindEye2's ``two_way_identification`` and Brain-Diffuser's pixel metrics.
"""

import numpy as np


def takagi_identification_loop(original, recon, anchors=None):
    """identification.py: for each original i, mean r over its samples vs image j's samples.

    original (n, d); recon (n, K, d). Returns per-anchor accuracy for ``anchors``
    (default: every image).
    """
    n = original.shape[0]
    anchors = range(n) if anchors is None else anchors
    acc_all = []
    for row in anchors:
        rs_row = []
        for col in range(n):
            rs_row.append(np.corrcoef(original[row], recon[col])[0, 1:])
        r_true = rs_row[row]
        acc = []
        for fake in range(n):
            if fake == row:
                continue
            acc.append(r_true.mean() > rs_row[fake].mean())
        acc_all.append(sum(acc) / len(acc))
    return np.array(acc_all)


def mindeye_identification_loop(original, recon, anchors=None):
    """For each sample g_jk, count originals i != j with r(o_i, g_jk) < r(o_j, g_jk)."""
    n, k = recon.shape[:2]
    anchors = range(n) if anchors is None else anchors
    out = []
    for j in anchors:
        per_sample = []
        for s in range(k):
            own = np.corrcoef(original[j], recon[j, s])[0, 1]
            count = 0
            for i in range(n):
                if i != j and np.corrcoef(original[i], recon[j, s])[0, 1] < own:
                    count += 1
            per_sample.append(count / (n - 1))
        out.append(np.mean(per_sample))
    return np.array(out)


def mindeye_original(reals, preds):
    """MindEye2's two_way_identification after feature extraction (return_avg=False)."""
    r = np.corrcoef(reals, preds)
    r = r[: len(reals), len(reals) :]
    congruents = np.diag(r)
    success = r < congruents
    success_cnt = np.sum(success, 0)
    return success_cnt / (len(reals) - 1)


def pixcorr_loop(originals, recons):
    """Brain-Diffuser / MindEye PixCorr: np.corrcoef of the flattened images, per image."""
    return np.array(
        [
            np.corrcoef(a.reshape(1, -1), b.reshape(1, -1))[0, 1]
            for a, b in zip(originals, recons, strict=True)
        ]
    )


def ssim_skimage(originals, recons):
    """The peers' call of scikit-image (grayscale, Gaussian σ 1.5, population covariance)."""
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    return np.array(
        [
            structural_similarity(
                rgb2gray(b),
                rgb2gray(a),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for a, b in zip(originals, recons, strict=True)
        ]
    )
