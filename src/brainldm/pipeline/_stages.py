"""The stages of a run, each a short call into the library, and what each one reads.

A stage declares, as data next to itself, the settings it reads (``reads``: a
whole section or one ``section.key``; ``reads_when``/``reads_unless``: read only
while another setting has, or has not, a value) and the stages whose outputs it
reads (``after``). Its cache key is built from exactly those
(:mod:`brainldm.pipeline._resume`). Settings that name weights enter a key by
what the files hold, not by their path. Where work runs and how it is split
(``[scale]``, devices) is read by no stage: it changes at most the last bits of
floats, never what is computed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from brainldm.pipeline._context import RunContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One stage of a run.

    Attributes
    ----------
    name : str
        Also its folder in the run.
    run : callable
        ``run(ctx) -> outputs`` (a JSON-able dict, recorded in the stage's marker).
    reads : tuple of str
        Settings the stage reads: ``"section"`` or ``"section.key"``.
    after : tuple of str
        Stages whose outputs it reads.
    reads_when : mapping of str to (str, object)
        Settings read only while another setting has a value: ``{"reconstruction.seed":
        ("features.z_posterior", "sample")}``.
    reads_unless : mapping of str to (str, object)
        Settings read only while another setting has not a value: ``{"evaluation.protocols":
        ("evaluation.weights_dir", None)}``.
    costly : bool
        Finished outputs that took real work: kept when settings change, until
        ``force``. A stage that is not costly (maps, report) is redrawn.
    optional_after : bool
        Read whichever of ``after`` have finished (the report).
    needs_ldm : bool
    """

    name: str
    run: Callable[[RunContext], dict]
    reads: tuple[str, ...]
    after: tuple[str, ...] = ()
    reads_when: Mapping[str, tuple[str, object]] = field(default_factory=dict)
    reads_unless: Mapping[str, tuple[str, object]] = field(default_factory=dict)
    costly: bool = True
    optional_after: bool = False
    needs_ldm: bool = False


def _prepare(ctx: RunContext) -> dict:
    from brainldm.nsd import prepare_subject

    d, out = ctx.config.data, {}
    for subject in d.subjects:
        for name, (atlas, rois) in split_rois(d).items():
            _, path = prepare_subject(
                ctx.nsd, subject, ctx.run.prepared_dir(), rois=rois, atlas=atlas, split=d.split,
                fmt=d.fmt, zscore=d.zscore, order=d.order, progress=ctx.progress,
            )  # fmt: skip
            out[f"{subject}/{name}"] = path.name
    return out


def split_rois(d) -> dict[str, tuple]:
    """The two splits prepared per subject: name → (atlas, ROIs)."""
    return {
        "decoding": (d.atlas, (d.z_roi, d.c_roi)),
        "encoding": (d.encoding_atlas, (d.encoding_roi,)),
    }


def _features(ctx: RunContext) -> dict:
    from functools import partial

    from brainldm.features import run_feature_extraction
    from brainldm.nsd import load_captions, load_stim_info, load_stimulus_images

    f, ids = ctx.config.features, ctx.image_ids()
    run_feature_extraction(
        ctx.model(), ctx.run.features_dir(), ids,
        images=partial(load_stimulus_images, ctx.nsd),
        captions=partial(load_captions, ctx.nsd, stim_info=load_stim_info(ctx.nsd)),
        z_size=f.z_size, z_posterior=f.z_posterior, seed=ctx.config.reconstruction.seed,
        batch_size=f.batch_size, execution=ctx.execution(), progress=ctx.progress,
    )  # fmt: skip
    return {"n_images": int(len(ids))}


#: The decode stage's scatter of decoding accuracy against data quality (≥ 2 subjects).
DATA_QUALITY_FIGURE = "data_quality.png"


def _decode(ctx: RunContext) -> dict:
    from brainldm.decoding import fit_decoders
    from brainldm.nsd import voxel_set_name

    d, out = ctx.config.data, {}
    stores = {"image_latents": ctx.store("z"), "text_embeddings": ctx.store("c")}
    rois = {"image_latents": d.z_roi, "text_embeddings": d.c_roi}
    for subject in d.subjects:
        split = ctx.split(subject, "decoding")
        decoders = fit_decoders(split, stores, rois=rois, config=ctx.config.decoding,
                                progress=ctx.progress)  # fmt: skip
        decoded = decoders.decode(split, stores)
        path = decoded.save(ctx.run.decoded(subject))
        # data quality beside accuracy: NSD's ncsnr of each ROI (None when not on disk)
        ncsnr = {t: split.median_ncsnr(voxel_set_name(roi)) for t, roi in rois.items()}
        out[str(subject)] = {"file": path.name, "per_image_r": decoded.mean_scores(),
                             "median_ncsnr": ncsnr}  # fmt: skip
        logger.info("subject %d decoded: %s", subject, out[str(subject)]["per_image_r"])
    titles = {"image_latents": f"z ({voxel_set_name(d.z_roi)})",
              "text_embeddings": f"c ({voxel_set_name(d.c_roi)})"}  # fmt: skip
    _plot_data_quality(out, titles, ctx.run.stage_dir("decode") / DATA_QUALITY_FIGURE)
    return out


def _plot_data_quality(decode: dict, titles: dict, path) -> None:
    """Decoding r against median ncsnr, one point per subject, where ≥ 2 subjects have it."""
    from brainldm.decoding import plot_data_quality
    from brainldm.maps import save_figure
    from brainldm.pipeline._layout import RunLayout

    with_quality = {s: v for s, v in decode.items()
                    if all(x is not None for x in v["median_ncsnr"].values())}  # fmt: skip
    if len(with_quality) < 2:
        return
    fig = plot_data_quality(
        [RunLayout.subject_name(s) for s in with_quality],
        {t: [v["median_ncsnr"][t] for v in with_quality.values()] for t in titles},
        {t: [v["per_image_r"][t] for v in with_quality.values()] for t in titles},
        titles=titles,
    )
    save_figure(fig, path)


def _reconstruct(ctx: RunContext) -> dict:
    from brainldm.decoding import DecodedLatents
    from brainldm.nsd import load_stimulus_images
    from brainldm.reconstruction import run_reconstruction, write_originals

    config, out = ctx.config.reconstruction, {}
    sharded = {"config": config, "execution": ctx.execution(), "progress": ctx.progress}
    for subject in ctx.config.data.subjects:
        decoded = DecodedLatents.load(ctx.run.decoded(subject))
        ids, folder = decoded.nsd_ids, ctx.run.reconstructions(subject)
        index = run_reconstruction(ctx.model(), decoded.image_latents, decoded.text_embeddings,
                                   ids, folder, **sharded)  # fmt: skip
        # the oracle: the true z and c of each test image, the ceiling of the method
        run_reconstruction(ctx.model(), ctx.store("z").get(ids), ctx.store("c").get(ids), ids,
                           ctx.run.oracle(subject), conditions=("zc",), **sharded)  # fmt: skip
        write_originals(folder, ids, load_stimulus_images(ctx.nsd, ids))
        out[str(subject)] = {"n_images": int(len(index))}
    return out


def _evaluate(ctx: RunContext) -> dict:
    from brainldm.evaluation import (
        concat_results,
        evaluate_reconstructions,
        offline_suite,
        plot_identification,
        pooled_summary,
        save_table,
    )
    from brainldm.maps import save_figure
    from brainldm.nsd import load_stimulus_images

    ev, subjects, out = ctx.config.evaluation, ctx.config.data.subjects, {}
    suites = ({"offline": offline_suite()} if ev.weights_dir is None
              else {p: {"protocol": p} for p in ev.protocols})  # fmt: skip
    for name, suite in suites.items():
        results = []
        for subject in subjects:
            folder = ctx.run.reconstructions(subject)
            ids = _test_ids(ctx, subject)
            originals = load_stimulus_images(ctx.nsd, ids)
            for recons, label in ((folder, None), (ctx.run.oracle(subject), "oracle zc")):
                res = evaluate_reconstructions(
                    recons, originals, ids, weights_dir=ev.weights_dir, subject=subject,
                    device=ev.device, progress=ctx.progress, **suite,
                )  # fmt: skip
                if label:
                    res.scores["condition"] = label
                results.append(res)
        combined, folder = concat_results(results), ctx.run.evaluation(name)
        combined.save(folder)
        table = combined.summary(n_bootstrap=ev.n_bootstrap)
        save_table(table, folder / "summary.csv")
        save_table(combined.compare(conditions=["z", "c", "zc"]), folder / "tests.csv")
        chart = plot_identification(pooled_summary(table, subjects), f"{name} protocol")
        save_figure(chart, folder / "identification.png")
        out[name] = {"folder": folder.relative_to(ctx.run.root).as_posix()}
    return out


def _test_ids(ctx: RunContext, subject: int) -> np.ndarray:
    """The test images of a subject, as its reconstruction index lists them."""
    import pandas as pd

    return pd.read_csv(ctx.run.reconstructions(subject) / "index.csv")["nsd_id"].unique()


def _mid_strength(f) -> float:
    """The noise level of the stage and layer analyses (iii)-(iv): the middle one."""
    return f.zc_strengths[len(f.zc_strengths) // 2]


def _zc_names(ctx: RunContext) -> dict:
    """Store names: zc by (strength, fraction), U-Net activations by (strength, fraction, layer).

    U-Net activations are recorded at the middle noise level only, the one the
    layer analysis (iv) reads (flattened, they are the bulk of the disk).
    """
    from brainldm.features import zc_store_name

    f, names = ctx.config.features, {}
    for s in f.zc_strengths:
        for fr in f.zc_fractions:
            names[(s, fr)] = zc_store_name(s, fr)
            if s == _mid_strength(f):
                names |= {(s, fr, layer): zc_store_name(s, fr, layer)
                          for layer in ctx.unet_layers()}  # fmt: skip
    return names


def zc_seed(seed: int, nsd_id: int) -> int:
    """Seed of the noise added to one image's z for zc (``encoding.seed``, nsd_id)."""
    from brainldm.reconstruction import sample_seed

    return sample_seed(seed, nsd_id, 0)


def _fill_zc(ctx: RunContext, ids: np.ndarray) -> None:
    """Zc and U-Net activations of ``ids`` at every strength, into feature stores."""
    from brainldm._utils import remove_temporaries
    from brainldm.features import encode_zc, fixed_batches

    f, r = ctx.config.features, ctx.config.reconstruction
    names = _zc_names(ctx)
    meta = {"model": ctx.get_ldm().fingerprint, "steps": r.num_inference_steps,
            "seed": ctx.config.encoding.seed}  # fmt: skip
    unet = {**meta, "pool": f.unet_pool}  # U-Net maps are stored compactly (features.unet_dtype)
    z_store, c_store = ctx.store("z"), ctx.store("c")
    for s in f.zc_strengths:
        stores = {k: ctx.store(v, meta) if len(k) == 2 else ctx.store(v, unet, f.unet_dtype)
                  for k, v in names.items() if k[0] == s}  # fmt: skip
        # temporaries of a killed run
        remove_temporaries([store.path for store in stores.values()], recursive=True)
        for batch in fixed_batches(ids, f.batch_size):
            # A batch is (re)computed whole while any of its stores misses an entry, so
            # a run killed between two stores' writes resumes to identical values.
            if not any(len(store.missing(batch)) for store in stores.values()):
                continue
            out = encode_zc(
                ctx.get_ldm(), z_store.get(batch), c_store.get(batch), strength=s,
                fractions=f.zc_fractions, pool=f.unet_pool,
                unet_layers=ctx.unet_layers() if s == _mid_strength(f) else (),
                num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
                timesteps=r.timesteps, seeds=[zc_seed(ctx.config.encoding.seed, i) for i in batch],
                batch_size=f.batch_size,
                image_size=r.image_size,
            )  # fmt: skip
            for key, store in stores.items():
                store.put(batch, out.zc[key[1]] if len(key) == 2 else out.unet[(key[2], key[1])])
        for store in stores.values():  # one chunked file per store, read by column blocks
            store.consolidate()


def _encode(ctx: RunContext) -> dict:
    from brainldm.encoding import FitOptions, run_encoding_analyses
    from brainldm.features import denoising_record_steps
    from brainldm.ldm import img2img_n_steps

    e, f, d = ctx.config.encoding, ctx.config.features, ctx.config.data
    r = ctx.config.reconstruction
    options = FitOptions(n_components=e.n_components, alphas=e.alphas, cv=e.cv, q=e.q,
                         random_state=e.seed, progress=ctx.progress)  # fmt: skip
    if not e.enabled:
        return {}
    names, out, voxels = _zc_names(ctx), {}, ctx.voxel_set()
    mid, last = _mid_strength(f), f.zc_fractions[-1]
    zc = names[(mid, last)]
    # z vs zc across noise levels (at the last stage) and across stages (at the middle level)
    pairs = [("z", names[(s, last)]) for s in f.zc_strengths]
    pairs += [("z", names[(mid, fr)]) for fr in f.zc_fractions if fr != last]
    layer_sets = {f"{fr:.2f}": [names[(mid, fr, layer)] for layer in ctx.unet_layers()]
                  for fr in f.zc_fractions}  # fmt: skip
    spaces = ["z", "c", *(v for v in names.values())]
    # The steps run when each stage is recorded, at each noise level (docs/presets.md).
    steps = {f"{s:.2f}": dict(zip([f"{fr:.2f}" for fr in f.zc_fractions], denoising_record_steps(
        f.zc_fractions, img2img_n_steps(r.num_inference_steps, s)), strict=True))
        for s in f.zc_strengths}  # fmt: skip
    for subject in d.subjects:
        # Betas stay on disk (read a block of voxels at a time), features too (PCA
        # reads them by column blocks): the whole brain never sits in memory.
        split = ctx.split(subject, "encoding", lazy=True)
        _fill_zc(ctx, np.unique(np.concatenate([split.train_nsd_ids, split.test_nsd_ids])))
        analyses = run_encoding_analyses(
            {k: ctx.store(k).matrix(split.train_nsd_ids) for k in spaces},
            split.train_betas[voxels],
            {k: ctx.store(k).matrix(split.test_nsd_ids) for k in spaces},
            split.test_betas[voxels],
            singles=["z", "c", zc], pairs=pairs, layer_sets=layer_sets,
            groups=split.train_nsd_ids, options=options, execution=ctx.execution(),
            unique_variance=e.unique_variance,
        )  # fmt: skip
        folder = ctx.run.encoding(subject)
        analyses.save(folder)
        _save_voxels(split, voxels, analyses, folder)
        out[str(subject)] = {
            "models": {
                name: {
                    "n_significant": int(res.significant.sum()),
                    "median_r": float(np.median(res.r)),
                    "n_components": res.n_components,
                }
                for name, res in analyses.results.items()
            },  # fmt: skip
            "layers": list(ctx.unet_layers()),
            "zc": zc,
            "pairs": [list(p) for p in pairs],
            "voxel_set": voxels,
            "n_voxels": int(len(split.voxel_indices[voxels])),
            "record_steps": steps,
            "q": e.q,
        }
    return out


def _save_voxels(split, roi: str, analyses, folder) -> None:
    """Write where each voxel lies (``voxels.npz``) and each model's significant r (NIfTI)."""
    import nibabel as nib

    from brainldm._utils import atomic_path
    from brainldm.maps import unmask

    vox = split.voxel_indices[roi]
    with atomic_path(folder / "voxels.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, voxel_indices=vox, volume_shape=np.array(split.volume_shape),
                 affine=np.asarray(split.affine))  # fmt: skip
    for name, res in analyses.results.items():
        img = unmask(np.where(res.significant, res.r, np.nan), vox, split.volume_shape,
                     split.affine)  # fmt: skip
        with atomic_path(folder / f"{name}_r.nii.gz") as tmp:
            nib.save(img, tmp)


def _maps(ctx: RunContext) -> dict:
    """Every map of every subject, significant voxels only (FDR), one file per map and view."""
    from brainldm.encoding import EncodingAnalyses
    from brainldm.maps import draw_map

    encode = json.loads(ctx.run.marker("encode").read_text())["outputs"]
    out = {}
    for subject, info in encode.items():
        subject = int(subject)
        analyses = EncodingAnalyses.load(ctx.run.encoding(subject))
        with np.load(ctx.run.encoding(subject) / "voxels.npz") as vox:
            where = dict(voxel_indices=vox["voxel_indices"],
                         volume_shape=tuple(int(n) for n in vox["volume_shape"]))  # fmt: skip
        where |= dict(folder=ctx.run.maps(subject), layout=ctx.nsd, subject=subject,
                      surfaces=ctx.config.maps.surfaces)  # fmt: skip
        q, files = info.get("q", 0.05), []
        for name in ("z", "c", info["zc"]):  # Figure 6: accuracy of significant voxels
            res = analyses.results[name]
            files += draw_map(np.where(res.significant, res.r, np.nan), name=f"accuracy_{name}",
                              title=f"r of {name}, P < {q:g} FDR", **where)  # fmt: skip
        for a, b in info["pairs"]:  # Figures 7-8: z vs zc, where the joint model is significant
            files += draw_map(analyses.unique_contrast(a, b), name=f"unique_{b}_minus_{a}",
                              cmap="RdBu_r", title=f"unique {b} − {a} ({analyses.unique_reading}), "
                              f"joint P < {q:g} FDR", **where)  # fmt: skip
        for fraction in analyses.best_layers:  # Figure 9
            files += draw_map(analyses.best_layer_map(fraction), name=f"best_layer_f{fraction}", labels=info["layers"],
                              title=f"best U-Net layer at {fraction}, P < {q:g} FDR", **where)  # fmt: skip
        out[str(subject)] = [path.name for path in files]
    return out


def _figures(ctx: RunContext) -> dict:
    from brainldm.pipeline._figures import draw_figures

    return draw_figures(ctx.run, ctx.nsd, ctx.config)


def _report(ctx: RunContext) -> dict:
    from brainldm.pipeline._report import write_report

    summary = {stage.name: json.loads(ctx.run.marker(stage.name).read_text())["outputs"]
               for stage in STAGES[:-1] if ctx.run.marker(stage.name).exists()}  # fmt: skip
    path = write_report(ctx.run.root, summary, demo=ctx.demo,
                        n_gallery_images=ctx.config.report.n_gallery_images)  # fmt: skip
    return {"report": path.relative_to(ctx.run.root).as_posix()}


#: The stages in run order, with what each reads.
STAGES: tuple[Stage, ...] = (
    Stage("prepare", _prepare, reads=(
        "data.subjects", "data.split", "data.atlas", "data.z_roi", "data.c_roi",
        "data.encoding_atlas", "data.encoding_roi", "data.fmt", "data.zscore", "data.order")),
    Stage("features", _features, after=("prepare",), needs_ldm=True,
          reads=("features.model", "features.z_size", "features.z_posterior",
                 "features.batch_size"),
          reads_when={"reconstruction.seed": ("features.z_posterior", "sample")}),
    Stage("decode", _decode, after=("prepare", "features"),
          reads=("decoding", "data.z_roi", "data.c_roi")),
    Stage("reconstruct", _reconstruct, after=("features", "decode"), needs_ldm=True,
          reads=("reconstruction",)),
    Stage("evaluate", _evaluate, after=("reconstruct",),
          reads=("evaluation.weights_dir", "evaluation.n_bootstrap"),
          # without weights, the offline suite is scored whatever the protocols
          reads_unless={"evaluation.protocols": ("evaluation.weights_dir", None)}),
    Stage("encode", _encode, after=("prepare", "features"), needs_ldm=True, reads=(
        "encoding", "data.encoding_roi", "features.zc_strengths", "features.zc_fractions",
        "features.unet_layers", "features.unet_pool", "features.unet_dtype",
        "features.batch_size", "reconstruction.num_inference_steps",
        "reconstruction.guidance_scale", "reconstruction.timesteps", "reconstruction.image_size")),
    Stage("maps", _maps, after=("prepare", "encode"), costly=False,
          reads=("maps", "data.encoding_roi")),
    Stage("figures", _figures, costly=False, optional_after=True,
          after=("reconstruct", "evaluate", "encode"),
          reads=("figures", "maps.surfaces", "data.subjects", "features.zc_strengths",
                 "features.zc_fractions")),
    Stage("report", _report, costly=False, optional_after=True, reads=("report",),
          after=("prepare", "features", "decode", "reconstruct", "evaluate", "encode", "maps",
                 "figures")),
)  # fmt: skip

#: Stage names in run order.
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)
