"""Voxel-wise encoding models: LDM features → brain (Takagi & Nishimoto 2023, §3.5).

For a feature set (one space, e.g. z, or several, e.g. z + zc), each space is
reduced to at most 6,400 dimensions by PCA fitted on the training images only,
a ridge model (one alpha per voxel, and per space for joint models, chosen by
grouped K-fold CV on the training trials) predicts every voxel, and the
prediction accuracy on the held-out shared images is tested voxel by voxel.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainldm.encoding._stats import (
    best_layer,
    correlation_pvalues,
    fdr_significant,
    pearson_r,
    unique_variance,
)

logger = logging.getLogger(__name__)

#: PCA size of each feature space in the paper.
PAPER_N_COMPONENTS = 6400


@dataclass
class EncodingResult:
    """Test accuracy of one encoding model, per voxel.

    Attributes
    ----------
    name : str
        Feature set, e.g. ``"z"`` or ``"z+zc_s0.50"``.
    spaces : tuple of str
        Feature spaces of the model, in order.
    r : ndarray of shape (n_voxels,)
        Pearson r between predicted and measured test responses.
    p : ndarray of shape (n_voxels,)
        One-sided p-value of ``r`` (independent-Gaussian null, n_test − 2 dof).
    significant : ndarray of bool, shape (n_voxels,)
        Benjamini-Hochberg at ``q``.
    r2 : ndarray of shape (n_voxels,)
        Test R².
    r2_split : ndarray of shape (n_spaces, n_voxels) or None
        For joint models, the test R² credited to each space.
    best_alphas : ndarray of shape (n_spaces, n_voxels) or (n_voxels,)
    n_components : dict of str to int
        Dimensions kept per space (after PCA).
    q : float
    n_test : int
    """

    name: str
    spaces: tuple[str, ...]
    r: np.ndarray
    p: np.ndarray
    significant: np.ndarray
    r2: np.ndarray
    r2_split: np.ndarray | None
    best_alphas: np.ndarray
    n_components: dict
    q: float
    n_test: int
    meta: dict = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (.npz) and ``path.json`` atomically."""
        from brainldm._utils import atomic_path, write_json_atomic

        path = Path(path)
        arrays = {k: getattr(self, k) for k in ("r", "p", "significant", "r2", "best_alphas")}
        if self.r2_split is not None:
            arrays["r2_split"] = self.r2_split
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        write_json_atomic(
            path.with_name(path.name + ".json"),
            {"name": self.name, "spaces": list(self.spaces), "n_components": self.n_components,
             "q": self.q, "n_test": self.n_test, **self.meta},  # fmt: skip
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> EncodingResult:
        """Read what :meth:`save` wrote."""
        path = Path(path)
        meta = json.loads(path.with_name(path.name + ".json").read_text())
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        return cls(
            name=meta.pop("name"),
            spaces=tuple(meta.pop("spaces")),
            r=arrays["r"],
            p=arrays["p"],
            significant=arrays["significant"],
            r2=arrays["r2"],
            r2_split=arrays.get("r2_split"),
            best_alphas=arrays["best_alphas"],
            n_components=meta.pop("n_components"),
            q=meta.pop("q"),
            n_test=meta.pop("n_test"),
            meta=meta,
        )


def reduce_features(
    X_train: np.ndarray,
    X_test: np.ndarray,
    n_components: int | None = PAPER_N_COMPONENTS,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """PCA fitted on the training rows only, applied to both.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, ...)
    X_test : ndarray of shape (n_test, ...)
        Flattened to 2-D.
    n_components : int or None
        Dimensions kept (6,400 in the paper); None, or at least the number of
        features, keeps the features as they are.
    random_state : int or None
        Seed of the randomised SVD.

    Returns
    -------
    Z_train : ndarray of shape (n_train, k)
    Z_test : ndarray of shape (n_test, k)
    """
    X_train = np.asarray(X_train, dtype=np.float32).reshape(len(X_train), -1)
    X_test = np.asarray(X_test, dtype=np.float32).reshape(len(X_test), -1)
    if n_components is None or n_components >= X_train.shape[1]:
        return X_train, X_test
    from sklearn.decomposition import PCA

    k = min(n_components, X_train.shape[0])
    pca = PCA(n_components=k, svd_solver="auto", random_state=random_state).fit(X_train)
    return pca.transform(X_train).astype(np.float32), pca.transform(X_test).astype(np.float32)


def _unique_rows(X: np.ndarray, nsd_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of X for each distinct nsd_id (features repeat with image repeats)."""
    unique, first, inverse = np.unique(nsd_ids, return_index=True, return_inverse=True)
    return X[first], inverse


def fit_encoding_model(
    X_train: Mapping[str, np.ndarray],
    Y_train: np.ndarray,
    X_test: Mapping[str, np.ndarray],
    Y_test: np.ndarray,
    groups: np.ndarray | None = None,
    n_components: int | None = PAPER_N_COMPONENTS,
    alphas: Sequence[float] | None = None,
    cv: int = 5,
    q: float = 0.05,
    backend: str = "numpy",
    device: str = "cpu",
    random_state: int | None = 0,
    name: str | None = None,
    progress: bool = False,
) -> EncodingResult:
    """Fit one voxel-wise encoding model and test it on held-out images.

    Parameters
    ----------
    X_train : mapping of str to ndarray of shape (n_train, ...)
        Feature spaces (e.g. ``{"z": z_train}``, or ``{"z": ..., "zc": ...}`` for a
        joint model), one row per training trial. X is the encoder's input.
    Y_train : ndarray of shape (n_train, n_voxels)
        Training betas (the encoder's targets), single trials.
    X_test : mapping of str to ndarray of shape (n_test, ...)
        Same spaces for the test images.
    Y_test : ndarray of shape (n_test, n_voxels)
        Test betas, averaged over repeats.
    groups : ndarray of int, shape (n_train,), optional
        ``nsd_id`` of each training trial: CV folds keep an image's repeats
        together, and PCA is fitted once per distinct image.
    n_components : int or None
        PCA size per space (6,400 in the paper); None skips PCA.
    alphas : sequence of float, optional
        Ridge grid (default :data:`brainldm.ridge.DEFAULT_ALPHAS`).
    cv : int
        Folds.
    q : float
        FDR level.
    backend, device
        Ridge backend (``"numpy"`` or ``"torch"``) and device.
    random_state : int or None
    name : str, optional
        Default: the space names joined by "+".
    progress : bool

    Returns
    -------
    result : EncodingResult
    """
    from brainldm.ridge import DEFAULT_ALPHAS, BandedRidgeCV, RidgeCV, grouped_folds, r2_score

    spaces = tuple(X_train)
    if not spaces or set(spaces) != set(X_test):
        raise ValueError(
            f"X_train and X_test must name the same feature spaces, got {list(X_train)} "
            f"and {list(X_test)}."
        )
    Y_train = np.asarray(Y_train, dtype=np.float32)
    Y_test = np.asarray(Y_test, dtype=np.float32)
    for s in spaces:
        if len(X_train[s]) != len(Y_train) or len(X_test[s]) != len(Y_test):
            raise ValueError(
                f"feature space {s!r}: {len(X_train[s])} train / {len(X_test[s])} test rows, "
                f"but Y has {len(Y_train)} / {len(Y_test)}."
            )
    reduced_train, reduced_test, dims = [], [], {}
    for s in spaces:
        Xtr = np.asarray(X_train[s]).reshape(len(Y_train), -1)
        if groups is not None:  # PCA on each distinct training image once
            rows, inverse = _unique_rows(Xtr, np.asarray(groups))
            Ztr_unique, Zte = reduce_features(rows, X_test[s], n_components, random_state)
            Ztr = Ztr_unique[inverse]
        else:
            Ztr, Zte = reduce_features(Xtr, X_test[s], n_components, random_state)
        reduced_train.append(Ztr)
        reduced_test.append(Zte)
        dims[s] = int(Ztr.shape[1])
    folds = grouped_folds(groups, n_splits=cv, random_state=random_state) if groups is not None else cv
    common = dict(cv=folds, backend=backend, device=device, progress=progress)
    grid = DEFAULT_ALPHAS if alphas is None else alphas
    if len(spaces) == 1:
        model = RidgeCV(alphas=grid, **common).fit(reduced_train[0], Y_train)
        pred = model.predict(reduced_test[0])
        r2_split = None
    else:
        model = BandedRidgeCV(alphas=grid, **common).fit(reduced_train, Y_train)
        pred = model.predict(reduced_test)
        r2_split = np.asarray(model.score(reduced_test, Y_test, split=True))
    r = pearson_r(Y_test, pred)
    p = correlation_pvalues(r, len(Y_test))
    result = EncodingResult(
        name=name or "+".join(spaces),
        spaces=spaces,
        r=r,
        p=p,
        significant=fdr_significant(p, q),
        r2=np.atleast_1d(np.asarray(r2_score(Y_test, pred), dtype=np.float64)),
        r2_split=r2_split,
        best_alphas=np.asarray(model.best_alphas_),
        n_components=dims,
        q=q,
        n_test=len(Y_test),
    )
    logger.info(
        "encoding %s: %d/%d voxels significant, median r %.3f",
        result.name, result.significant.sum(), len(r), np.median(r),
    )  # fmt: skip
    return result


@dataclass
class EncodingAnalyses:
    """Every model of the paper's encoding analysis, and the maps derived from them.

    Attributes
    ----------
    results : dict of str to EncodingResult
        One per fitted model (single spaces and joint pairs).
    unique : dict of str to ndarray of shape (n_voxels,)
        ``"{a}|{a}+{b}"``: unique variance of space a in the joint model a + b.
    best_layers : dict of str to ndarray of int, shape (n_voxels,)
        Per layer set (e.g. a denoising step): index into its layer list, -1 if
        no layer is significant.
    layer_names : dict of str to list of str
    """

    results: dict
    unique: dict
    best_layers: dict
    layer_names: dict


def run_encoding_analyses(
    train: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    Y_train: np.ndarray,
    Y_test: np.ndarray,
    singles: Sequence[str] = (),
    pairs: Sequence[tuple[str, str]] = (),
    layer_sets: Mapping[str, Sequence[str]] | None = None,
    groups: np.ndarray | None = None,
    **kwargs,
) -> EncodingAnalyses:
    """The paper's encoding analyses (§3.5; Figures 6-9).

    Parameters
    ----------
    train, test : mapping of str to ndarray
        Every feature set by name (``"z"``, ``"c"``, ``"zc_s0.50"``,
        ``"unet_mid_block_f0.50"``, ...), rows aligned with ``Y_train``/``Y_test``.
    Y_train : ndarray of shape (n_train, n_voxels)
    Y_test : ndarray of shape (n_test, n_voxels)
    singles : sequence of str
        (i) One model per feature set (z, c, zc, ...).
    pairs : sequence of (str, str)
        (ii)/(iii) Joint models a + b (z with zc at each noise level or step);
        the unique variance of each space is R²(a + b) − R²(the other alone).
    layer_sets : mapping of str to sequence of str, optional
        (iv) For each step, the U-Net layers' feature sets; one model per layer
        and the best layer per voxel among significant models.
    groups : ndarray of int, shape (n_train,), optional
        nsd_id of each training trial.
    **kwargs
        Passed to :func:`fit_encoding_model` (n_components, alphas, cv, q, ...).

    Returns
    -------
    analyses : EncodingAnalyses
    """
    layer_sets = dict(layer_sets or {})
    needed = set(singles) | {n for pair in pairs for n in pair}
    needed |= {n for names in layer_sets.values() for n in names}
    missing = sorted(n for n in needed if n not in train or n not in test)
    if missing:
        raise ValueError(f"feature sets {missing} are not in train/test; have {sorted(train)}.")
    results: dict = {}

    def single(name: str) -> EncodingResult:
        if name not in results:
            results[name] = fit_encoding_model(
                {name: train[name]}, Y_train, {name: test[name]}, Y_test, groups, **kwargs
            )
        return results[name]

    for name in singles:
        single(name)
    unique = {}
    for a, b in pairs:
        joint = fit_encoding_model(
            {a: train[a], b: train[b]}, Y_train, {a: test[a], b: test[b]}, Y_test, groups,
            name=f"{a}+{b}", **kwargs,
        )  # fmt: skip
        results[joint.name] = joint
        unique[f"{a}|{a}+{b}"] = unique_variance(joint.r2, single(b).r2)
        unique[f"{b}|{a}+{b}"] = unique_variance(joint.r2, single(a).r2)
    best_layers = {}
    for label, names in layer_sets.items():
        fitted = [single(n) for n in names]
        best_layers[label] = best_layer(
            np.stack([f.r for f in fitted]), np.stack([f.significant for f in fitted])
        )
    return EncodingAnalyses(
        results=results,
        unique=unique,
        best_layers=best_layers,
        layer_names={k: list(v) for k, v in layer_sets.items()},
    )
