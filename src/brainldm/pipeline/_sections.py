"""The sections of a run's report, in order; each reads what its stage wrote.

A section is ``section(report, inputs)``: it adds headings, tables and figures to
the :class:`~brainldm.pipeline._report.Report` from the run folder. To add an
analysis to the report, write one function and list it in :data:`SECTIONS`.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from dataclasses import dataclass

from brainldm.pipeline._layout import RunLayout
from brainldm.pipeline._report import Report

#: Published results on the NSD test set (mean of subjects 1, 2, 5, 7), from
#: MindEye2 (ICML 2024) Table 1 as transcribed in ``shared/reference/peers.md`` §2.2.
#: Published, not measured here.
PUBLISHED = {
    "columns": ["PixCorr", "SSIM", "Alex(2)", "Alex(5)", "Incep", "CLIP", "Eff↓", "SwAV↓"],
    "rows": {
        "Takagi & Nishimoto (re-run)": [
            ".246",
            ".410",
            "78.9%",
            "85.6%",
            "83.8%",
            "82.1%",
            ".811",
            ".504",
        ],
        "Brain-Diffuser (re-run)": [
            ".273",
            ".365",
            "94.4%",
            "96.6%",
            "91.3%",
            "90.9%",
            ".728",
            ".422",
        ],
        "MindEye2 (refined + blend)": [
            ".322",
            ".431",
            "96.1%",
            "98.6%",
            "95.4%",
            "93.0%",
            ".619",
            ".344",
        ],
    },  # fmt: skip
}

_PROTOCOL_TITLES = {
    "takagi": "Two-way identification as in the paper (Figure 5)",
    "mindeye": "The modern NSD metric suite (MindEye2's evaluation)",
    "braindiffuser": "The NSD metric suite with Brain-Diffuser's preprocessing",
    "offline": "Metrics that need no downloaded weights (PixCorr, SSIM, EfficientNet-Lite0)",
}

_DEMO_NOTE = (
    "<p class='note'><b>Demo run.</b> The NSD here is synthetic and the latent "
    "diffusion model is tiny (about 3 M parameters, not Stable Diffusion), "
    "<b>trained only on synthetic images</b> of a coloured shape on a textured "
    "background (<code>scripts/train_demo_ldm.py</code>; its text encoder keeps random "
    "weights). The images show that every stage runs and carries the planted signal "
    "through a working latent diffusion model, not what the method achieves on real "
    "brains and photographs. To run on real data, write a config "
    'with <code>[data] nsd_root = "/path/to/nsd"</code> and <code>[features] model = '
    '"/path/to/sd-v1-4.ckpt"</code> (or a diffusers folder), then '
    "<code>brainldm run config.toml</code>.</p>"
)


@dataclass(frozen=True)
class ReportInputs:
    """What every section may read.

    Attributes
    ----------
    run : RunLayout
    summary : dict
        Stage name → the outputs recorded in its marker.
    demo : bool
    n_gallery_images : int
    """

    run: RunLayout
    summary: dict
    demo: bool
    n_gallery_images: int

    @property
    def subjects(self) -> list[int]:
        return [int(s) for s in self.summary.get("decode", {})]


def _demo(report: Report, inputs: ReportInputs) -> None:
    if inputs.demo:
        report.add_html(_DEMO_NOTE)


def _decoding(report: Report, inputs: ReportInputs) -> None:
    decode = inputs.summary.get("decode", {})
    if not decode:
        return
    report.add_section("Decoding", "Mean per-image Pearson r between decoded and true features "
                       "over the test images (the seed code's score).")  # fmt: skip
    report.add_table(["subject", "z (early)", "c (ventral)"],
                     [[RunLayout.subject_name(s), f"{v['per_image_r']['image_latents']:.3f}",
                       f"{v['per_image_r']['text_embeddings']:.3f}"]
                      for s, v in decode.items()])  # fmt: skip
    _data_quality(report, inputs, decode)


def _data_quality(report: Report, inputs: ReportInputs, decode: dict) -> None:
    """Decoding accuracy against data quality: each subject's median ncsnr of each ROI."""
    from brainldm.pipeline._stages import DATA_QUALITY_FIGURE

    def ncsnr(v, target):
        value = v.get("median_ncsnr", {}).get(target)
        return "not recorded" if value is None else f"{value:.3f}"

    report.add_section("Decoding accuracy against data quality", level=3)
    report.add_text("The paper relates each subject's decoding accuracy to the quality of "
                    "its data: here NSD's noise-ceiling SNR (ncsnr.nii.gz beside the betas), "
                    "median over the voxels of each ROI. 'not recorded': the file was not "
                    "on disk when the subject's data were prepared.")  # fmt: skip
    report.add_table(["subject", "median ncsnr (z ROI)", "z decoding r",
                      "median ncsnr (c ROI)", "c decoding r"],
                     [[RunLayout.subject_name(s), ncsnr(v, "image_latents"),
                       f"{v['per_image_r']['image_latents']:.3f}", ncsnr(v, "text_embeddings"),
                       f"{v['per_image_r']['text_embeddings']:.3f}"]
                      for s, v in decode.items()])  # fmt: skip
    figure = inputs.run.stage_dir("decode") / DATA_QUALITY_FIGURE
    if figure.exists():
        report.add_figure(figure, "Decoding r against the median ncsnr of the ROI, one point "
                          "per subject")  # fmt: skip


def _reconstructions(report: Report, inputs: ReportInputs) -> None:
    import pandas as pd

    report.add_section("Reconstructions")
    for subject in inputs.subjects:
        report.add_section(RunLayout.subject_name(subject), level=3)
        folder, oracle = inputs.run.reconstructions(subject), inputs.run.oracle(subject)
        if not (folder / "index.csv").exists():
            report.add_text("No reconstructions.")
            continue
        from brainldm.reconstruction import original_path, png_path

        index = pd.read_csv(folder / "index.csv")
        rows = []
        for nsd_id in list(dict.fromkeys(index["nsd_id"]))[: inputs.n_gallery_images]:
            row = [nsd_id, [(original_path(folder, nsd_id), "original")]]
            for condition in ("z", "c", "zc"):
                sub = index[(index.nsd_id == nsd_id) & (index.condition == condition)]
                row.append([(folder / p, f"{condition} sample") for p in sub["path"]])
            row.append([(oracle / png_path("zc", nsd_id, 0), "oracle")])
            rows.append(row)
        report.add_gallery(["nsd_id", "original", "z only", "c only", "z + c (samples)",
                            "oracle z + c"], rows)  # fmt: skip


def _evaluation_tables(inputs: ReportInputs, protocol: str):
    import pandas as pd

    folder = inputs.run.root / inputs.summary["evaluate"][protocol]["folder"]
    table = pd.read_csv(folder / "summary.csv")
    tests = pd.read_csv(folder / "tests.csv")
    labels = set(table["subject"].astype(str))
    pooled = table[table["subject"].astype(str) == ("pooled" if "pooled" in labels
                                                    else sorted(labels)[0])]  # fmt: skip
    return folder, table, tests, pooled


def _identification(report: Report, inputs: ReportInputs) -> None:
    evaluation = inputs.summary.get("evaluate", {})
    report.add_section("Identification")
    if not evaluation:
        report.add_text("The evaluation stage has not run.")
    for protocol in evaluation:
        folder, table, tests, _ = _evaluation_tables(inputs, protocol)
        report.add_section(_PROTOCOL_TITLES.get(protocol, protocol), level=3)
        if (folder / "identification.png").exists():
            report.add_figure(
                folder / "identification.png",
                "Mean score per condition, "
                "pooled over subjects, with 95% bootstrap CIs; dashed: chance (0.5)",
            )
        report.add_text("Per subject and pooled; identification accuracy has chance 0.5; "
                        "'oracle zc' reconstructs from the true z and c.")  # fmt: skip
        metrics = list(dict.fromkeys(table["metric"]))
        rows = []
        for (subject, condition), sub in table.groupby(["subject", "condition"], sort=False):
            by = sub.set_index("metric")
            rows.append([str(subject), condition, int(sub["n_images"].max()), *(
                f"{by.at[m, 'mean']:.3f} [{by.at[m, 'ci_low']:.2f}, {by.at[m, 'ci_high']:.2f}]"
                if m in by.index else "" for m in metrics)])  # fmt: skip
        report.add_table(["subject", "condition", "images", *metrics], rows)
        report.add_text("Two-sided Wilcoxon signed-rank tests between conditions over "
                        "images (Holm-corrected):")  # fmt: skip
        columns = ["subject", "metric", "condition_a", "condition_b", "n_images", "mean_a",
                   "mean_b", "p_value", "p_adjusted"]  # fmt: skip
        report.add_table(["subject", "metric", "a", "b", "images", "mean a", "mean b", "p",
                          "p (Holm)"],
                         [[v if isinstance(v, str) else f"{v:.3g}" for v in r]
                          for r in tests[columns].itertuples(index=False)])  # fmt: skip


def _published(report: Report, inputs: ReportInputs) -> None:
    report.add_section("Metric table and published results")
    for protocol in inputs.summary.get("evaluate", {}):
        if protocol == "takagi":
            continue
        _, _, _, pooled = _evaluation_tables(inputs, protocol)
        metrics = list(dict.fromkeys(pooled["metric"]))
        rows = []
        for condition in dict.fromkeys(pooled["condition"]):
            sub = pooled[pooled["condition"] == condition].set_index("metric")["mean"]
            rows.append([condition, *(f"{sub[m]:.3f}" if m in sub else "" for m in metrics)])
        report.add_text(f"Measured in this run ({protocol} protocol, pooled means):")
        report.add_table(["condition", *metrics], rows)
    report.add_text("Published, not measured here: NSD test set, mean of subjects 1, 2, 5 "
                    "and 7; MindEye2 (ICML 2024) Table 1.")  # fmt: skip
    report.add_table(["method", *PUBLISHED["columns"]],
                     [[k, *v] for k, v in PUBLISHED["rows"].items()])  # fmt: skip


def _human(report: Report, inputs: ReportInputs) -> None:
    """Human two-alternative identification (``brainldm rate``), where raters have judged."""
    results = {s: inputs.run.rating_results(s) for s in inputs.subjects}
    results = {s: json.loads(p.read_text()) for s, p in results.items() if p.exists()}
    if not results:
        return
    report.add_section("Human identification")
    report.add_html("<p>Raters chose which of two test images each reconstruction shows "
                    "(chance 0.5); <code>brainldm rate</code>.</p>")  # fmt: skip
    for subject, res in results.items():
        report.add_section(RunLayout.subject_name(subject), level=3)
        report.add_table(
            ["condition", "raters", "images", "judgements", "accuracy", "sem"],
            [
                [
                    r["condition"],
                    r["n_raters"],
                    r["n_images"],
                    r["n_judgements"],
                    f"{r['accuracy']:.3f}",
                    f"{r['sem']:.3f}",
                ]
                for r in res["pooled"]
            ],
        )
        tests = [[r["condition_a"], r["condition_b"], r["n_images"], f"{r['p_value']:.3g}",
                  f"{r['p_holm']:.3g}", "yes" if r["significant"] else "no"]
                 for r in res["tests"] if r["p_value"] is not None]  # fmt: skip
        if tests:
            report.add_table(["a", "b", "images", "p (signed-rank)", "p (Holm)",
                              f"significant at {res['alpha']}"], tests)  # fmt: skip


def _encoding(report: Report, inputs: ReportInputs) -> None:
    report.add_section("Encoding models")
    for subject, info in inputs.summary.get("encode", {}).items():
        where = f"{info['voxel_set']}, " if "voxel_set" in info else ""
        report.add_section(f"{RunLayout.subject_name(subject)} ({where}{info['n_voxels']} voxels)",
                           level=3)  # fmt: skip
        q = info.get("q", 0.05)
        report.add_table(["model", "dimensions (after PCA)", f"significant voxels (FDR q={q:g})",
                          "median r"],
                         [[name, " + ".join(str(k) for k in m.get("n_components", {}).values()),
                           m["n_significant"], f"{m['median_r']:.3f}"]
                          for name, m in info["models"].items()])  # fmt: skip
        if info.get("record_steps"):
            report.add_text("Denoising stages recorded after these DDIM steps (noise level: "
                            "stage → steps run): " + "; ".join(
                                f"{s}: " + ", ".join(f"{fr} → {n}" for fr, n in st.items())
                                for s, st in info["record_steps"].items()) + ".")  # fmt: skip
        for png in sorted(inputs.run.maps(int(subject)).glob("*.png")):
            report.add_figure(png, png.stem.replace("_", " "))


def _figures(report: Report, inputs: ReportInputs) -> None:
    """The paper's figures, as the figures stage drew them (PNG; SVG and CSV beside)."""
    from brainldm.pipeline._figures import CAPTIONS

    info = inputs.summary.get("figures")
    if not info or not info.get("figures"):
        return
    report.add_section("Figures of the paper")
    report.add_html(f"<p>{RunLayout.subject_name(int(info['subject']))} in Figures 3 and 6-9. "
                    "Each figure's SVG and the CSV of the values it draws lie beside it in "
                    f"<code>{inputs.run.figures().name}/</code>; <code>brainldm figures "
                    "RUN</code> redraws them.</p>")  # fmt: skip
    for name, files in info["figures"].items():
        png = inputs.run.figures() / f"{name}.png"
        if png.exists():
            base, _, protocol = name.partition("_")
            caption = CAPTIONS.get(base, name).format(protocol=protocol or "paper's")
            report.add_figure(png, caption)


def _seeds(report: Report, inputs: ReportInputs) -> None:
    """The seed check (``brainldm seeds``), when it has run."""
    import pandas as pd

    from brainldm.pipeline._seeds import IDENTIFICATION_SPREAD, MAP_AGREEMENT

    folder = inputs.run.seed_checks()
    spread, agreement = folder / IDENTIFICATION_SPREAD, folder / MAP_AGREEMENT
    if not spread.exists() and not agreement.exists():
        return
    report.add_section("Robustness to the random seed",
                       "The same data, features and decoders; reconstruction and encoding "
                       "rerun with other seeds (the noise of each generated image, and of z "
                       "for zc).")  # fmt: skip
    if spread.exists():
        table = pd.read_csv(spread)
        seeds = [c for c in table.columns if c.startswith("mean_seed")]
        report.add_text("Pooled scores per seed, their standard deviation and range:")
        report.add_table(["protocol", "condition", "metric", *(c.removeprefix("mean_") for c in seeds),
                          "sd", "range"],
                         [[r.protocol, r.condition, r.metric, *(f"{r[c]:.3f}" for c in seeds),
                           f"{r.sd:.3f}", f"{r.range:.3f}"] for _, r in table.iterrows()])  # fmt: skip
    if agreement.exists():
        table = pd.read_csv(agreement)
        report.add_text("Encoding accuracy maps: correlation between seeds over all voxels, and "
                        "Dice overlap of the significant voxels:")  # fmt: skip
        report.add_table(["subject", "model", "seeds", "r between maps", "Dice", "significant"],
                         [[RunLayout.subject_name(r.subject), r.model, f"{r.seed_a} vs {r.seed_b}",
                           f"{r.r_correlation:.3f}", f"{r.dice:.3f}",
                           f"{r.n_significant_a} / {r.n_significant_b}"]
                          for _, r in table.iterrows()])  # fmt: skip


def _configuration(report: Report, inputs: ReportInputs) -> None:
    import html

    config = inputs.run.config_toml()
    report.add_section("Configuration")
    report.add_html("<pre>" + html.escape(config.read_text() if config.exists() else "") + "</pre>")


def _versions(report: Report, inputs: ReportInputs) -> None:
    from importlib.metadata import PackageNotFoundError, version

    rows = [["python", platform.python_version()]]
    for name in ("brainldm", "numpy", "scipy", "torch", "diffusers", "transformers", "nilearn"):
        try:
            rows.append([name, version(name)])
        except PackageNotFoundError:
            rows.append([name, "not installed"])
    report.add_section("Versions")
    report.add_table(["package", "version"], rows)


#: The report's sections, in order.
SECTIONS: tuple[Callable[[Report, ReportInputs], None], ...] = (
    _demo,
    _decoding,
    _reconstructions,
    _identification,
    _published,
    _human,
    _figures,
    _encoding,
    _seeds,
    _configuration,
    _versions,
)
