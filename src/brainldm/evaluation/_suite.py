"""Running a metric suite on images, and the result container (per-image scores + provenance)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainldm._utils import check_option, write_json_atomic
from brainldm.evaluation._identification import correlation_distance, two_way_identification
from brainldm.evaluation._images import CONDITIONS, load_reconstructions, prepare_pixel_images
from brainldm.evaluation._networks import extract_network_features, load_network
from brainldm.evaluation._pixel import pixcorr, ssim
from brainldm.evaluation._protocols import PROTOCOLS, MetricSpec, get_metrics
from brainldm.evaluation._stats import SCORE_COLUMNS, compare_conditions, save_table, summarize

logger = logging.getLogger(__name__)

SCORES_FILE = "scores.csv"
_PIXEL_CHUNK = 32  # images resized at once for PixCorr/SSIM
_IDENTIFICATION_NOTE = {
    True: "per image: fraction of the other n_images - 1 test images beaten; ties count as "
    "losses; anchored on the original, mean r over samples (Takagi & Nishimoto)",
    False: "per image: fraction of the other n_images - 1 test images beaten; ties count as "
    "losses; anchored on each reconstruction sample, averaged over samples (MindEye)",
}
METADATA_FILE = "evaluation.json"


@dataclass(frozen=True)
class EvaluationResult:
    """Per-image scores of a metric suite, and how they were made.

    Attributes
    ----------
    scores : pandas.DataFrame
        Long format, one row per (subject, condition, nsd_id, metric): columns
        ``subject, condition, nsd_id, metric, score``. Identification scores are
        per-image accuracies in [0, 1] (chance 0.5); distances are 1 − r (lower
        is better).
    metadata : dict
        Protocol, metric definitions (network, layer, preprocessing), SHA-256 of
        every weight file, numbers of images and samples, package versions.
    """

    scores: object
    metadata: dict = field(default_factory=dict)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``scores.csv`` and ``evaluation.json`` (atomically) into ``directory``."""
        directory = Path(directory)
        save_table(self.scores, directory / SCORES_FILE)
        write_json_atomic(directory / METADATA_FILE, self.metadata)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> EvaluationResult:
        """Read a result written by :meth:`save`."""
        import pandas as pd

        directory = Path(directory)
        for name in (SCORES_FILE, METADATA_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name} not found; write it with save().")
        scores = pd.read_csv(directory / SCORES_FILE)
        return cls(scores, json.loads((directory / METADATA_FILE).read_text()))

    def summary(self, **kwargs):
        """Mean and bootstrap interval per subject/condition/metric: see :func:`summarize`."""
        return summarize(self.scores, **kwargs)

    def compare(self, **kwargs):
        """Wilcoxon tests between conditions: see :func:`compare_conditions`."""
        return compare_conditions(self.scores, **kwargs)

    def means(self):
        """Mean score per (subject, condition) × metric, as the papers' tables."""
        return self.scores.pivot_table(
            index=["subject", "condition"],
            columns="metric",
            values="score",
            aggfunc="mean",
            dropna=False,
            sort=False,
        )


def concat_results(results) -> EvaluationResult:
    """One result from several (e.g. one per subject): scores stacked, metadata listed."""
    import pandas as pd

    results = list(results)
    if not results:
        raise ValueError("results is empty.")
    scores = pd.concat([r.scores for r in results], ignore_index=True)
    dup = scores.duplicated(["subject", "condition", "nsd_id", "metric"])
    if dup.any():
        raise ValueError(
            f"{int(dup.sum())} duplicated (subject, condition, nsd_id, metric) rows; give each "
            "result its own subject label."
        )
    return EvaluationResult(scores, {"parts": [r.metadata for r in results]})


def _versions() -> dict:
    from brainldm import __version__

    out = {"brainldm": __version__, "numpy": np.__version__}
    for name in ("torch", "torchvision", "transformers", "scipy"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = getattr(module, "__version__", "?")
    return out


def _check_image_stack(images, name: str, allow_samples: bool) -> np.ndarray:
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 RGB images; got dtype {arr.dtype}.")
    shapes = "(n_images, H, W, 3)" + (" or (n_images, n_samples, H, W, 3)" if allow_samples else "")
    if arr.shape[-1:] != (3,) or arr.ndim not in ((4, 5) if allow_samples else (4,)):
        raise ValueError(f"{name} must have shape {shapes}; got {arr.shape}.")
    return arr[:, None] if arr.ndim == 4 and allow_samples else arr


def _score(
    originals,
    recons: dict,
    nsd_ids: np.ndarray,
    specs: tuple[MetricSpec, ...],
    protocol: str,
    *,
    subject,
    networks: dict | None,
    weights_dir,
    verify: bool,
    batch_size: int,
    device: str,
    progress: bool,
):
    """Score every condition of ``recons`` ({condition: (n, K, H, W, 3)}); rows + metadata."""
    import pandas as pd

    rows = []
    cond_rank = {c: i for i, c in enumerate(recons)}
    metric_rank = {s.name: i for i, s in enumerate(specs)}

    def add(metric: str, condition, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        rows.append(
            pd.DataFrame(
                {
                    # None labels become NaN, as they read back from CSV.
                    "subject": [np.nan if subject is None else subject] * len(nsd_ids),
                    "condition": np.nan if condition is None else condition,
                    "nsd_id": nsd_ids,
                    "metric": metric,
                    "score": values,
                    "_order": cond_rank[condition] * len(specs) + metric_rank[metric],
                }
            )
        )

    pixel_specs = [s for s in specs if s.kind in ("pixcorr", "ssim")]
    if pixel_specs:
        # The paper has no pixel metrics; for "takagi" compare at NSD's native 425 px as
        # Brain-Diffuser does.
        pixel_protocol = "mindeye" if protocol == "mindeye" else "braindiffuser"
        for condition, rec in recons.items():
            values = {spec.name: [] for spec in pixel_specs}
            # In chunks of images: 1000 × 5 samples at 425 px would need 11-22 GB at once.
            for start in range(0, len(nsd_ids), _PIXEL_CHUNK):
                sl = slice(start, start + _PIXEL_CHUNK)
                orig_px = prepare_pixel_images(originals[sl], pixel_protocol)
                rec_px = prepare_pixel_images(rec[sl], pixel_protocol)
                for spec in pixel_specs:
                    fn = pixcorr if spec.kind == "pixcorr" else ssim
                    values[spec.name].append(fn(orig_px, rec_px))
            for spec in pixel_specs:
                add(spec.name, condition, np.concatenate(values[spec.name]))

    weights: dict[str, dict] = {}
    network_specs = [s for s in specs if s.kind in ("identification", "distance")]
    for network in dict.fromkeys(s.network for s in network_specs):
        if networks is not None and network in networks:
            model, weights[network] = networks[network], {"source": "model passed by the caller"}
        elif weights_dir is not None:
            model, hashes = load_network(network, weights_dir, verify=verify)
            model = model.to(device)
            weights[network] = hashes
        else:
            needed = [s.name for s in network_specs if s.network == network]
            raise ValueError(
                f"metric(s) {needed} need network {network!r}: pass weights_dir (a folder with "
                f"its weight file) or networks={{{network!r}: model}}."
            )
        this = [s for s in network_specs if s.network == network]
        for prep in dict.fromkeys(s.preprocessing for s in this):
            group = [s for s in this if s.preprocessing == prep]
            nodes = list(dict.fromkeys(s.node for s in group))
            kwargs = dict(batch_size=batch_size, device=device, progress=progress)
            orig_feats = extract_network_features(originals, model, nodes, prep, **kwargs)
            for condition, rec in recons.items():
                rec_feats = extract_network_features(rec, model, nodes, prep, **kwargs)
                for spec in group:
                    if spec.kind == "identification":
                        result = two_way_identification(
                            orig_feats[spec.node],
                            rec_feats[spec.node],
                            protocol,
                            feature_name=spec.name,
                        )
                        add(spec.name, condition, result.accuracy_per_image)
                    else:
                        add(
                            spec.name,
                            condition,
                            correlation_distance(orig_feats[spec.node], rec_feats[spec.node]),
                        )
                del rec_feats
            del orig_feats
        del model
    # Rows ordered by condition (as given), metric (as in the suite), then nsd_id.
    scores = pd.concat(rows, ignore_index=True).sort_values(["_order", "nsd_id"], kind="stable")
    scores = scores[list(SCORE_COLUMNS)].reset_index(drop=True)
    metadata = {
        "protocol": protocol,
        "metrics": [
            {**dataclasses.asdict(s), "higher_is_better": s.higher_is_better} for s in specs
        ],
        "weights_sha256": weights,
        "subject": subject,
        "conditions": list(recons),
        "n_images": int(len(nsd_ids)),
        "n_samples": {c: int(r.shape[1]) for c, r in recons.items()},
        "identification": _IDENTIFICATION_NOTE[protocol == "takagi"],
        "device": str(device),
        "versions": _versions(),
    }
    # JSON-native (tuples → lists, numpy → Python) so that save/load round-trips exactly.
    metadata = json.loads(json.dumps(metadata, default=lambda o: o.item()))
    return scores, metadata


def _resolve(protocol, metrics, batch_size):
    from brainldm._utils import check_positive_int

    check_option("protocol", protocol, tuple(PROTOCOLS))
    check_positive_int("batch_size", batch_size)
    return get_metrics(protocol, metrics)


def evaluate_images(
    originals,
    reconstructions,
    *,
    protocol: str = "takagi",
    metrics=None,
    weights_dir: str | os.PathLike | None = None,
    networks: dict | None = None,
    nsd_ids=None,
    subject=None,
    condition: str | None = None,
    verify: bool = True,
    batch_size: int = 16,
    device: str = "cpu",
    progress: bool = False,
) -> EvaluationResult:
    """Score reconstructions against their originals with a protocol's metric suite.

    Parameters
    ----------
    originals : array of uint8, shape (n_images, H, W, 3)
        The seen images (e.g. ``brainldm.nsd.load_stimulus_images``; 425 px in NSD).
    reconstructions : array of uint8, shape (n_images, n_samples, H', W', 3)
        Same row order; any size (resized as the protocol does). Shape
        (n_images, H', W', 3) means one sample per image.
    protocol : {"takagi", "mindeye", "braindiffuser"}
        The metric suite and identification orientation: see :data:`PROTOCOLS`.
    metrics : sequence of str or MetricSpec, optional
        A subset of the suite by name, or custom specs. Default: the whole suite.
    weights_dir : path-like, optional
        Folder with the networks' weight files (:data:`WEIGHT_FILES`).
    networks : dict of {str: torch.nn.Module}, optional
        Ready models by network name, used as they are (on the caller's device)
        instead of loading from ``weights_dir``.
    nsd_ids : array of int, shape (n_images,), optional
        Labels of the rows (0-based NSD ids); default 0..n_images-1.
    subject, condition
        Labels stored in every score row.
    verify : bool
        Check torchvision weight files against the hash in their names.
    batch_size : int
    device : str
        Where networks loaded from ``weights_dir`` run.
    progress : bool

    Returns
    -------
    result : EvaluationResult

    Raises
    ------
    ValueError
        Mismatched numbers of images, fewer than 2 test images, a metric whose
        network is neither passed nor loadable.
    FileNotFoundError
        A weight file is missing from ``weights_dir``.
    """
    specs = _resolve(protocol, metrics, batch_size)
    orig = _check_image_stack(originals, "originals", allow_samples=False)
    rec = _check_image_stack(reconstructions, "reconstructions", allow_samples=True)
    if rec.shape[0] != orig.shape[0]:
        raise ValueError(
            f"reconstructions has {rec.shape[0]} images but originals has {orig.shape[0]}; "
            "they need one entry per test image, in the same order."
        )
    if orig.shape[0] < 2:
        raise ValueError(f"evaluation needs at least 2 test images; got {orig.shape[0]}.")
    ids = np.arange(orig.shape[0]) if nsd_ids is None else np.asarray(nsd_ids, dtype=np.int64)
    if ids.shape != (orig.shape[0],) or len(np.unique(ids)) != len(ids):
        raise ValueError(
            f"nsd_ids must be {orig.shape[0]} distinct ids, one per image; got shape {ids.shape}."
        )
    scores, metadata = _score(
        orig,
        {condition: rec},
        ids,
        specs,
        protocol,
        subject=subject,
        networks=networks,
        weights_dir=weights_dir,
        verify=verify,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    return EvaluationResult(scores, metadata)


def evaluate_reconstructions(
    folder: str | os.PathLike,
    originals,
    original_nsd_ids,
    *,
    conditions=None,
    protocol: str = "takagi",
    metrics=None,
    weights_dir: str | os.PathLike | None = None,
    networks: dict | None = None,
    subject=None,
    verify: bool = True,
    batch_size: int = 16,
    device: str = "cpu",
    progress: bool = False,
) -> EvaluationResult:
    """Score every condition of a reconstruction folder (its ``index.csv``).

    Networks are loaded once and the originals' features computed once for all
    conditions.

    Parameters
    ----------
    folder : path-like
        Written by :func:`brainldm.reconstruction.reconstruct`.
    originals : array of uint8, shape (n_originals, H, W, 3)
    original_nsd_ids : array of int, shape (n_originals,)
        0-based NSD id of each original; must cover every reconstructed id.
    conditions : sequence of {"zc", "z", "c"}, optional
        Default: every condition in the index.
    protocol, metrics, weights_dir, networks, subject, verify, batch_size, device, progress
        As :func:`evaluate_images`.

    Returns
    -------
    result : EvaluationResult
        Rows of every condition. Each condition is scored on the images it has
        (identification uses them as the test set).
    """
    import pandas as pd

    specs = _resolve(protocol, metrics, batch_size)
    orig_all = _check_image_stack(originals, "originals", allow_samples=False)
    orig_ids = np.asarray(original_nsd_ids, dtype=np.int64).ravel()
    if orig_ids.shape[0] != orig_all.shape[0]:
        raise ValueError(
            f"original_nsd_ids has {orig_ids.shape[0]} ids but originals has "
            f"{orig_all.shape[0]} images."
        )
    if conditions is None:
        index_path = Path(folder) / "index.csv"
        if not index_path.is_file():
            raise FileNotFoundError(f"{index_path} not found; it is written by reconstruct().")
        present = set(pd.read_csv(index_path)["condition"])
        conditions = [c for c in CONDITIONS if c in present]
    recons, ids = {}, None
    for condition in conditions:
        cond_ids, images = load_reconstructions(folder, condition)
        if ids is not None and not np.array_equal(ids, cond_ids):
            raise ValueError(
                f"condition {condition!r} has other nsd_ids than {list(recons)[0]!r}; evaluate "
                "them separately (evaluate_images) or finish the run."
            )
        ids = cond_ids
        recons[condition] = images
    if ids is None:
        raise ValueError("conditions is empty.")
    pos = {int(i): k for k, i in enumerate(orig_ids)}
    absent = [int(i) for i in ids if int(i) not in pos]
    if absent:
        raise ValueError(
            f"{len(absent)} reconstructed nsd_id(s) have no original, e.g. {absent[:5]}; "
            "pass originals covering every id in the index."
        )
    if len(ids) < 2:
        raise ValueError(f"evaluation needs at least 2 test images; got {len(ids)}.")
    orig = orig_all[[pos[int(i)] for i in ids]]
    scores, metadata = _score(
        orig,
        recons,
        ids,
        specs,
        protocol,
        subject=subject,
        networks=networks,
        weights_dir=weights_dir,
        verify=verify,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    metadata["reconstructions"] = str(Path(folder).resolve())
    return EvaluationResult(scores, metadata)
