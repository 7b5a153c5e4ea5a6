"""The paper's Figures 3-9 drawn from a run's finished stages (the ``figures`` stage).

Each figure is drawn when the stages it reads have finished (3-4: reconstruct;
5: evaluate; 6-9: encode) and written as ``figures/figureN.{png,svg,csv}``.
Nothing is recomputed: ``brainldm figures RUN`` redraws them from a finished run.
"""

from __future__ import annotations

import json
import logging

import numpy as np

logger = logging.getLogger(__name__)

#: What each figure shows, for the report (the paper's captions, shortened).
CAPTIONS = {
    "figure3": "Figure 3. Presented (red frame) and reconstructed images of one subject, using "
               "z only, c only and z + c (one fixed sample of each).",
    "figure4": "Figure 4. The same test images reconstructed with z + c from every subject.",
    "figure5": "Figure 5. Identification accuracy by metric and condition ({protocol} protocol): "
               "mean ± SEM over test images pooled across subjects, chance 0.5; brackets mark "
               "two-sided signed-rank tests (Holm-corrected). Bootstrap CIs are in the table.",
    "figure6": "Figure 6. Prediction accuracy (Pearson r) of the encoding models of z, c and zc "
               "on held-out images; only voxels with P < q (FDR) are coloured.",
    "figure7": "Figure 7. Unique variance of zc minus that of z in the joint model, across "
               "noise levels (low to high); coloured where the joint model is significant (FDR).",
    "figure8": "Figure 8. Unique variance of zc minus that of z in the joint model, across "
               "denoising stages (early to late); coloured where the joint model is significant.",
    "figure9": "Figure 9. The most predictive U-Net layer of each voxel, early to late "
               "denoising stages; coloured where a layer's model is significant (FDR).",
}  # fmt: skip


def _marker_outputs(run, stage: str) -> dict | None:
    path = run.marker(stage)
    return json.loads(path.read_text())["outputs"] if path.exists() else None


def draw_figures(run, layout, config) -> dict:
    """Draw every figure whose inputs have finished into ``run.figures()``.

    Parameters
    ----------
    run : RunLayout
    layout : NSDLayout or None
        For the subject's volume → fsaverage transforms (None: slices).
    config : RunConfig
        ``figures``, ``maps.surfaces``, ``features.zc_strengths`` /
        ``zc_fractions`` (which joint models are rows of Figures 7-8).

    Returns
    -------
    outputs : dict
        ``{"subject": n, "figures": {name: [file names]}}``.
    """
    import pandas as pd

    from brainldm import figures as fg
    from brainldm.pipeline._layout import RunLayout

    fc, subject = config.figures, config.figure_subject
    folder, label = run.figures(), RunLayout.subject_name(subject)
    written: dict[str, list[str]] = {}

    def save(name, drawn):
        fig, table = drawn
        paths = fg.save_figure_files(fig, table, folder, name)
        written[name] = [p.name for p in paths.values()]

    if _marker_outputs(run, "reconstruct") is not None:
        save("figure3", fg.figure_3(run.reconstructions(subject), n_images=fc.n_images,
                                    sample=fc.sample, subject_label=label))  # fmt: skip
        subjects = {RunLayout.subject_name(s): run.reconstructions(s) for s in config.data.subjects}
        save("figure4", fg.figure_4(subjects, n_images=min(fc.n_images, 3), sample=fc.sample))
    for protocol, info in (_marker_outputs(run, "evaluate") or {}).items():
        ev = run.root / info["folder"]
        name = "figure5" if protocol in ("takagi", "offline") else f"figure5_{protocol}"
        save(name, fg.figure_5(pd.read_csv(ev / "scores.csv"), pd.read_csv(ev / "tests.csv"),
                               pd.read_csv(ev / "summary.csv"),
                               title=f"Figure 5. Identification ({protocol} protocol): mean ± SEM, "
                                     "subjects pooled; * Holm-corrected signed-rank p < 0.05"))  # fmt: skip
    encode = (_marker_outputs(run, "encode") or {}).get(str(subject))
    if encode:
        _brain_figures(run, layout, config, subject, encode, save)
    return {"subject": subject, "figures": written}


def _brain_figures(run, layout, config, subject: int, encode: dict, save) -> None:
    from brainldm import figures as fg
    from brainldm.encoding import EncodingAnalyses
    from brainldm.features import zc_store_name
    from brainldm.pipeline._layout import RunLayout

    folder = run.encoding(subject)
    analyses = EncodingAnalyses.load(folder)
    with np.load(folder / "voxels.npz") as vox:
        space = fg.VoxelSpace(vox["voxel_indices"], tuple(int(n) for n in vox["volume_shape"]),
                              layout, subject)  # fmt: skip
    kinds, label = tuple(config.maps.surfaces), RunLayout.subject_name(subject)
    f = config.features
    mid, last = f.zc_strengths[len(f.zc_strengths) // 2], f.zc_fractions[-1]
    steps = encode.get("record_steps", {})
    save("figure6", fg.figure_6(analyses, ["z", "c", encode["zc"]], space, kinds, label))
    noise = [(f"noise {s:.2f}", ("z", zc_store_name(s, last))) for s in f.zc_strengths]
    save("figure7", fg.figure_7(analyses, noise, space, kinds, label))

    def stage_label(fr):
        step = steps.get(f"{mid:.2f}", {}).get(f"{fr:.2f}")
        return f"{fr:.0%} denoised" + (f" (step {step})" if step is not None else "")

    stages = [(stage_label(fr), ("z", zc_store_name(mid, fr))) for fr in f.zc_fractions]
    save("figure8", fg.figure_8(analyses, stages, space, kinds, label))
    if analyses.best_layers:
        rows = {k: stage_label(float(k)) for k in analyses.best_layers}
        save("figure9", fg.figure_9(analyses, space, kinds, label, row_labels=rows))


def redraw_figures(run_dir, subject: int | None = None, progress: bool = False) -> dict:
    """Redraw the figures and the report of a finished run, recomputing nothing.

    Parameters
    ----------
    run_dir : path-like
        A run folder (its ``config.toml`` is read).
    subject : int, optional
        The subject of Figures 3 and 6-9 (``figures.subject``); default: the run's.
    progress : bool

    Returns
    -------
    summary : dict
        As :func:`~brainldm.pipeline.run_pipeline` (``figures`` and ``report``).

    Raises
    ------
    FileNotFoundError
        When ``run_dir`` holds no run (no ``config.toml``).
    """
    from brainldm.config import load_run_config
    from brainldm.pipeline._layout import RunLayout
    from brainldm.pipeline._run import run_pipeline

    run = RunLayout(run_dir)
    if not run.config_toml().is_file():
        raise FileNotFoundError(f"{run.config_toml()} is missing: {run.root} is not a brainldm "
                                "run folder (brainldm run / brainldm demo write one).")  # fmt: skip
    overrides = {} if subject is None else {"figures": {"subject": subject}}
    config = load_run_config(run.config_toml(), overrides)
    # forced: redrawn even when nothing they read changed (e.g. with a newer brainldm)
    return run_pipeline(config, run.root, stages=("figures", "report"), force=("figures",),
                        demo=config.preset == "demo", progress=progress)  # fmt: skip
