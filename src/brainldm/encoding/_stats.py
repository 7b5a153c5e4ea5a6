"""Statistics of encoding models: accuracy, its null, FDR, unique variance, best layer.

The null: for a voxel with no relation to the features, the Pearson r between
predicted and measured responses over n independent test images behaves as
the correlation of two independent Gaussian vectors, so
t = r √((n − 2) / (1 − r²)) follows Student's t with n − 2 degrees of freedom
(Takagi & Nishimoto 2023, §3.5). Tests are one-sided (r > 0).
"""

from __future__ import annotations

import numpy as np


def pearson_r(Y_true: np.ndarray, Y_pred: np.ndarray) -> np.ndarray:
    """Pearson r between measured and predicted responses, per voxel (column).

    Parameters
    ----------
    Y_true, Y_pred : ndarray of shape (n_images, n_voxels)

    Returns
    -------
    r : ndarray of shape (n_voxels,)
        0 for a constant column.
    """
    from brainldm.ridge import correlation_score

    return np.atleast_1d(np.asarray(correlation_score(Y_true, Y_pred), dtype=np.float64))


def correlation_pvalues(r: np.ndarray, n: int) -> np.ndarray:
    """One-sided p-values of Pearson r against the independent-Gaussian null.

    Parameters
    ----------
    r : ndarray of shape (n_voxels,)
    n : int
        Number of test images (n > 2).

    Returns
    -------
    p : ndarray of shape (n_voxels,)
        P(R ≥ r) under the null.
    """
    from scipy import stats

    if n <= 2:
        raise ValueError(f"n must be > 2 test images to test a correlation, got {n}.")
    r = np.clip(np.asarray(r, dtype=np.float64), -1 + 1e-12, 1 - 1e-12)
    t = r * np.sqrt((n - 2) / (1 - r**2))
    return stats.t.sf(t, df=n - 2)


def fdr_significant(p: np.ndarray, q: float = 0.05) -> np.ndarray:
    """Benjamini-Hochberg: which voxels are significant at false discovery rate ``q``.

    Parameters
    ----------
    p : ndarray of shape (n_voxels,)
    q : float in (0, 1)

    Returns
    -------
    significant : ndarray of bool, shape (n_voxels,)
    """
    from scipy.stats import false_discovery_control

    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q!r}.")
    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    return false_discovery_control(p, method="bh") <= q


def unique_variance(r2_joint: np.ndarray, r2_without: np.ndarray) -> np.ndarray:
    """Return the unique variance of a space: R²(joint model) − R²(model without it).

    Parameters
    ----------
    r2_joint, r2_without : ndarray of shape (n_voxels,)
        Test-set R² of the joint model and of the model lacking the space.

    Returns
    -------
    unique : ndarray of shape (n_voxels,)
    """
    return np.asarray(r2_joint, dtype=np.float64) - np.asarray(r2_without, dtype=np.float64)


def best_layer(accuracy: np.ndarray, significant: np.ndarray) -> np.ndarray:
    """Index of the layer that predicts each voxel best, among significant ones.

    Parameters
    ----------
    accuracy : ndarray of shape (n_layers, n_voxels)
        Test accuracy (Pearson r) of each layer's model.
    significant : ndarray of bool, shape (n_layers, n_voxels)

    Returns
    -------
    best : ndarray of int, shape (n_voxels,)
        Argmax over the layers whose model is significant for the voxel; -1
        where no layer is.
    """
    acc = np.where(significant, np.asarray(accuracy, dtype=np.float64), -np.inf)
    best = np.argmax(acc, axis=0)
    best[~np.asarray(significant).any(axis=0)] = -1
    return best


def map_agreement(r_a: np.ndarray, significant_a: np.ndarray, r_b: np.ndarray,
                  significant_b: np.ndarray) -> dict:  # fmt: skip
    """How alike two accuracy maps of one model are (e.g. fitted with two random seeds).

    Parameters
    ----------
    r_a, r_b : ndarray of shape (n_voxels,)
        Test accuracy of each voxel.
    significant_a, significant_b : ndarray of bool, shape (n_voxels,)

    Returns
    -------
    agreement : dict
        ``r_correlation`` (Pearson r between the two maps over all voxels),
        ``dice`` (2|A ∩ B| / (|A| + |B|) of the significant sets; NaN when
        both are empty), ``n_significant_a``, ``n_significant_b``.
    """
    r_a, r_b = np.asarray(r_a, dtype=np.float64), np.asarray(r_b, dtype=np.float64)
    a, b = np.asarray(significant_a, dtype=bool), np.asarray(significant_b, dtype=bool)
    if not (r_a.shape == r_b.shape == a.shape == b.shape):
        raise ValueError(f"the maps differ in shape: {r_a.shape}, {r_b.shape}, {a.shape}, "
                         f"{b.shape}.")  # fmt: skip
    corr = float(np.corrcoef(r_a, r_b)[0, 1]) if r_a.std() > 0 and r_b.std() > 0 else float("nan")
    total = int(a.sum() + b.sum())
    return {"r_correlation": corr, "dice": 2 * int((a & b).sum()) / total if total else float("nan"),
            "n_significant_a": int(a.sum()), "n_significant_b": int(b.sum())}  # fmt: skip
