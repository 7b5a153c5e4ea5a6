"""Ridge decoders from brain activity to the LDM's latents (§3.2 of the paper).

Early visual cortex → z (the VAE latent of the image), ventral cortex → c (the
CLIP text embedding of its captions): one :class:`~brainldm.ridge.RidgeCV` per
target, alpha chosen by cross-validation over the training trials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brainldm.config import DecodingConfig
from brainldm.decoding._latents import TARGETS, DecodedLatents

#: The paper's ROIs (streams labels, seed_code.md §2): early visual → z, ventral → c.
PAPER_ROIS = {"image_latents": "early", "text_embeddings": "ventral"}


def make_latent_decoder(config: DecodingConfig | None = None, progress: bool = False):
    """An unfitted decoder: :class:`~brainldm.ridge.RidgeCV` with ``config``'s settings.

    Parameters
    ----------
    config : DecodingConfig, optional
        Default: the paper's (alphas 1e-6..1, 5 contiguous folds, X standardised,
        no intercept).
    progress : bool

    Returns
    -------
    model : RidgeCV
        Fit it with ``groups=train_nsd_ids`` when ``config.grouped_folds``
        (:func:`fit_decoders` does): then the repeats of an image never sit on
        both sides of a fold. Otherwise the folds are contiguous blocks of trials
        (the seed's ``KFold``), and ``groups`` must be None.
    """
    from sklearn.model_selection import KFold

    from brainldm.ridge import RidgeCV

    config = DecodingConfig() if config is None else config
    return RidgeCV(
        alphas=config.alphas,
        cv=config.cv if config.grouped_folds else KFold(config.cv),
        fit_intercept=config.fit_intercept,
        standardize_X=config.standardize_X,
        standardize_Y=config.standardize_Y,
        progress=progress,
    )


def per_image_correlation(truth: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Pearson r between true and decoded features of each image, across feature dimensions.

    Parameters
    ----------
    truth, decoded : ndarray of shape (n_images, ...)

    Returns
    -------
    r : ndarray of float64, shape (n_images,)

    Examples
    --------
    >>> per_image_correlation(np.array([[1.0, 2.0, 3.0]]), np.array([[2.0, 4.0, 6.5]])).round(4)
    array([0.9966])
    """
    from brainldm.ridge import correlation_score

    n = len(truth)
    return np.atleast_1d(correlation_score(np.reshape(truth, (n, -1)).T,
                                           np.reshape(decoded, (n, -1)).T))  # fmt: skip


def _features(source, nsd_ids: np.ndarray, what: str) -> np.ndarray:
    if hasattr(source, "get"):  # a FeatureStore
        return np.asarray(source.get(nsd_ids))
    values = np.asarray(source)
    if len(values) != len(nsd_ids):
        raise ValueError(f"{what} has {len(values)} rows but {len(nsd_ids)} are needed.")
    return values


def _trial_targets(source, nsd_ids: np.ndarray, target: str):
    """Targets of the training trials, and the shape of one image's features.

    From a store, each distinct image is read once and the trials index it
    (:class:`~brainldm.ridge.IndexedRows`): c of ~25,000 trials is never
    expanded (the ridge reads a batch of targets at a time).
    """
    from brainldm.ridge import IndexedRows

    if hasattr(source, "get"):  # a FeatureStore
        unique, inverse = np.unique(nsd_ids, return_inverse=True)
        values = np.asarray(source.get(unique))
        return IndexedRows(values.reshape(len(values), -1), inverse), tuple(values.shape[1:])
    values = _features(source, nsd_ids, f"features[{target!r}]")
    return values.reshape(len(values), -1), tuple(values.shape[1:])


@dataclass
class LatentDecoders:
    """Fitted decoders of one subject: betas of an ROI → one target each.

    Attributes
    ----------
    models : dict of str to RidgeCV
        Target (``"image_latents"``, ``"text_embeddings"``) → fitted decoder.
    rois : dict of str to str
        Target → the ROI whose betas it reads.
    shapes : dict of str to tuple of int
        Target → shape of one image's features (e.g. (4, 40, 40)).
    settings : dict
        Subject, ROIs, ridge settings and the alphas chosen, for the record.
    """

    models: dict
    rois: dict
    shapes: dict
    settings: dict = field(default_factory=dict)

    def predict(self, betas: Mapping[str, np.ndarray], nsd_ids) -> DecodedLatents:
        """Decode each target from the betas of its ROI.

        Parameters
        ----------
        betas : mapping of str to ndarray of shape (n_images, n_voxels)
            ROI name → betas (e.g. ``split.test_betas``).
        nsd_ids : array-like of int, shape (n_images,)

        Returns
        -------
        decoded : DecodedLatents
            float32 latents, no scores (see :meth:`DecodedLatents` and :meth:`decode`).
        """
        out = {}
        for target, model in self.models.items():
            pred = model.predict(betas[self.rois[target]]).astype(np.float32)
            out[target] = pred.reshape(len(pred), *self.shapes[target])
        return DecodedLatents(nsd_ids, out.get(TARGETS[0]), out.get(TARGETS[1]),
                              settings=dict(self.settings))  # fmt: skip

    def decode(self, split, features: Mapping[str, Any] | None = None) -> DecodedLatents:
        """Decode the test images of ``split``; score them when their true features are given.

        Parameters
        ----------
        split : SubjectSplit
        features : mapping of str to FeatureStore or ndarray, optional
            Target → true features of the test images (a store, or rows aligned
            with ``split.test_nsd_ids``). Adds per-image r to ``scores``.

        Returns
        -------
        decoded : DecodedLatents
        """
        decoded = self.predict(split.test_betas, split.test_nsd_ids)
        for target, source in (features or {}).items():
            if target in self.models:
                truth = _features(source, split.test_nsd_ids, f"features[{target!r}]")
                decoded.scores[target] = per_image_correlation(truth, decoded._get(target))
        return decoded


def fit_decoders(
    split,
    features: Mapping[str, Any],
    rois: Mapping[str, str] | None = None,
    config: DecodingConfig | None = None,
    progress: bool = False,
) -> LatentDecoders:
    """Fit the paper's decoders of one subject on its training trials.

    Parameters
    ----------
    split : SubjectSplit
        Training betas and the image of each trial (:func:`brainldm.nsd.prepare_subject`).
    features : mapping of str to FeatureStore or ndarray
        Target (``"image_latents"`` and/or ``"text_embeddings"``) → its features:
        a :class:`~brainldm.features.FeatureStore` (looked up by
        ``split.train_nsd_ids``) or an array of shape (n_train_trials, ...) aligned
        with the trials.
    rois : mapping of str to str, optional
        Target → ROI of ``split``. Default: :data:`PAPER_ROIS`.
    config : DecodingConfig, optional
        Ridge settings; default the paper's.
    progress : bool

    Returns
    -------
    decoders : LatentDecoders

    Raises
    ------
    ValueError
        For an unknown target or an ROI the split does not hold.
    """
    import dataclasses

    config = DecodingConfig() if config is None else config
    rois = dict(PAPER_ROIS if rois is None else rois)
    unknown = sorted(set(features) - set(TARGETS))
    if unknown:
        raise ValueError(f"features has unknown target(s) {unknown}; allowed: {list(TARGETS)}.")
    for target in features:
        if rois.get(target) not in split.train_betas:
            raise ValueError(
                f"rois[{target!r}]={rois.get(target)!r} is not an ROI of the split; it holds "
                f"{sorted(split.train_betas)}."
            )
    groups = split.train_nsd_ids if config.grouped_folds else None
    models, shapes, alphas = {}, {}, {}
    for target in (t for t in TARGETS if t in features):
        Y, shapes[target] = _trial_targets(features[target], split.train_nsd_ids, target)
        model = make_latent_decoder(config, progress=progress)
        model.fit(split.train_betas[rois[target]], Y, groups=groups)
        models[target] = model
        alphas[target] = np.unique(np.atleast_1d(model.best_alphas_)).tolist()
    settings = {
        "subject": int(split.subject),
        "rois": {t: rois[t] for t in models},
        "decoding": dataclasses.asdict(config),
        "alphas_chosen": alphas,
    }
    return LatentDecoders(models, {t: rois[t] for t in models}, shapes, settings)
