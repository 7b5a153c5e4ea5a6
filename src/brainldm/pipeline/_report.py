"""One self-contained HTML report of a run: galleries, scores, published numbers, maps."""

from __future__ import annotations

import base64
import html
import io
import json
import platform
from pathlib import Path

import numpy as np

#: Published results on the NSD test set (mean of subjects 1, 2, 5, 7), from
#: MindEye2 (ICML 2024) Table 1 as transcribed in ``shared/reference/peers.md`` §2.2.
#: Published, not measured here.
PUBLISHED = {
    "columns": ["PixCorr", "SSIM", "Alex(2)", "Alex(5)", "Incep", "CLIP", "Eff↓", "SwAV↓"],
    "rows": {
        "Takagi & Nishimoto (re-run)": [".246", ".410", "78.9%", "85.6%", "83.8%", "82.1%",
                                        ".811", ".504"],
        "Brain-Diffuser (re-run)": [".273", ".365", "94.4%", "96.6%", "91.3%", "90.9%",
                                    ".728", ".422"],
        "MindEye2 (refined + blend)": [".322", ".431", "96.1%", "98.6%", "95.4%", "93.0%",
                                       ".619", ".344"],
    },  # fmt: skip
}

_PROTOCOL_TITLES = {
    "takagi": "Two-way identification as in the paper (Figure 5)",
    "mindeye": "The modern NSD metric suite (MindEye2's evaluation)",
    "braindiffuser": "The NSD metric suite with Brain-Diffuser's preprocessing",
    "offline": "Metrics that need no downloaded weights (PixCorr, SSIM, EfficientNet-Lite0)",
}

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:3px 8px;
font-size:.9em;text-align:right} th{background:#f3f3f3} td:first-child{text-align:left}
.gallery img{width:96px;height:96px;margin:1px;image-rendering:auto}
.gallery td{text-align:center} .note{background:#fff5d6;padding:.8em;border:1px solid #e5c86b}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em} figure{margin:.5em 0}
figcaption{font-size:.85em;color:#555}
"""


def _png_b64(path_or_array) -> str:
    from PIL import Image

    if isinstance(path_or_array, (str, Path)):
        image = Image.open(path_or_array).convert("RGB")
    else:
        image = Image.fromarray(np.asarray(path_or_array))
    image.thumbnail((192, 192))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _img(path, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png_b64(path)}">'


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f'<figure><img style="max-width:100%" alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}'
            "</figcaption></figure>")  # fmt: skip


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _gallery(run_dir: Path, subject: int, n_images: int = 6) -> str:
    import pandas as pd

    folder = run_dir / "reconstruct" / f"subj{subject:02d}"
    oracle = run_dir / "reconstruct" / f"subj{subject:02d}_oracle"
    if not (folder / "index.csv").exists():
        return "<p>No reconstructions.</p>"
    index = pd.read_csv(folder / "index.csv")
    ids = list(dict.fromkeys(index["nsd_id"]))[:n_images]
    rows = []
    for nsd_id in ids:
        cells = [f"<td>{nsd_id}</td>"]
        original = folder / "originals" / f"{nsd_id:06d}.png"
        cells.append(f"<td>{_img(original, 'original') if original.exists() else ''}</td>")
        for condition in ("z", "c", "zc"):
            sub = index[(index.nsd_id == nsd_id) & (index.condition == condition)]
            imgs = "".join(_img(folder / p, f"{condition} sample") for p in sub["path"])
            cells.append(f"<td>{imgs}</td>")
        orc = oracle / "zc" / f"{nsd_id:06d}_00.png"
        cells.append(f"<td>{_img(orc, 'oracle') if orc.exists() else ''}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in
                   ("nsd_id", "original", "z only", "c only", "z + c (samples)", "oracle z + c"))  # fmt: skip
    return f'<table class="gallery"><tr>{head}</tr>{"".join(rows)}</table>'


def _human_section(run_dir: Path, subjects: list[int]) -> str:
    """Human two-alternative identification (``brainldm rate``), where raters have judged."""
    from brainldm.rating._run import RATING_DIR

    parts = []
    for subject in subjects:
        path = run_dir / "reconstruct" / f"subj{subject:02d}" / RATING_DIR / "rating_results.json"
        if not path.exists():
            continue
        res = json.loads(path.read_text())
        pooled = [[r["condition"], r["n_raters"], r["n_images"], r["n_judgements"],
                   f"{r['accuracy']:.3f}", f"{r['sem']:.3f}"] for r in res["pooled"]]  # fmt: skip
        tests = [[r["condition_a"], r["condition_b"], r["n_images"], f"{r['p_value']:.3g}",
                  f"{r['p_holm']:.3g}", "yes" if r["significant"] else "no"]
                 for r in res["tests"] if r["p_value"] is not None]  # fmt: skip
        parts.append(f"<h3>subj{subject:02d}</h3>")
        parts.append(_table(["condition", "raters", "images", "judgements", "accuracy", "sem"],
                            pooled))  # fmt: skip
        if tests:
            parts.append(_table(["a", "b", "images", "p (signed-rank)", "p (Holm)",
                                 f"significant at {res['alpha']}"], tests))  # fmt: skip
    if not parts:
        return ""
    return ("<h2>Human identification</h2><p>Raters chose which of two test images each "
            "reconstruction shows (chance 0.5); <code>brainldm rate</code>.</p>" + "".join(parts))


def refresh_report(run_dir: str | Path) -> Path | None:
    """Rewrite the report of a finished run (e.g. after ``brainldm rate results``).

    Parameters
    ----------
    run_dir : path-like
        A run folder whose report stage has run.

    Returns
    -------
    path : Path or None
        The report, or None when ``run_dir`` holds no finished report.
    """
    from brainldm.config import load_run_config

    run_dir = Path(run_dir)
    summary_path = run_dir / "report" / "summary.json"
    if not summary_path.exists() or not (run_dir / "config.toml").exists():
        return None
    summary = json.loads(summary_path.read_text())
    config = load_run_config(run_dir / "config.toml")
    return write_report(run_dir, summary, demo=config.preset == "demo",
                        n_gallery_images=config.report.n_gallery_images)  # fmt: skip


def _versions() -> list[list[str]]:
    from importlib.metadata import PackageNotFoundError, version

    rows = [["python", platform.python_version()]]
    for name in ("brainldm", "numpy", "scipy", "torch", "diffusers", "transformers", "nilearn"):
        try:
            rows.append([name, version(name)])
        except PackageNotFoundError:
            rows.append([name, "not installed"])
    return rows


def write_report(
    run_dir: str | Path, summary: dict, demo: bool = False, n_gallery_images: int = 6
) -> Path:
    """Write ``run_dir/report/report.html`` from a run's outputs.

    Parameters
    ----------
    run_dir : path-like
        The run folder (stages as sub-folders, ``config.toml``).
    summary : dict
        What :func:`brainldm.pipeline.run_pipeline` returns for the earlier stages.
    demo : bool
        Adds the notice that the weights are random.
    n_gallery_images : int
        Test images per subject in the galleries.

    Returns
    -------
    path : Path
    """
    from brainldm._utils import atomic_path, write_json_atomic

    run_dir = Path(run_dir)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>brainldm report"
             f"</title><style>{_CSS}</style></head><body><h1>brainldm report</h1>"]  # fmt: skip
    if demo:
        parts.append(
            "<p class='note'><b>Demo run.</b> The NSD here is synthetic and the latent "
            "diffusion model is tiny (about 2 M parameters, not Stable Diffusion), with "
            "<b>random weights</b> fitted for about a minute to the synthetic images: the "
            "images show that every stage runs and carries the planted signal, not what the "
            "method achieves. To run on real data, write a config "
            "with <code>[data] nsd_root = \"/path/to/nsd\"</code> and <code>[features] model = "
            "\"/path/to/sd-v1-4.ckpt\"</code> (or a diffusers folder), then "
            "<code>brainldm run config.toml</code>.</p>"
        )
    decode = summary.get("decode", {})
    if decode:
        rows = [[f"subj{int(s):02d}", f"{v['per_image_r']['image_latents']:.3f}",
                 f"{v['per_image_r']['text_embeddings']:.3f}"] for s, v in decode.items()]  # fmt: skip
        parts.append("<h2>Decoding</h2><p>Mean per-image Pearson r between decoded and true "
                     "features over the test images (the seed code's score).</p>")  # fmt: skip
        parts.append(_table(["subject", "z (early)", "c (ventral)"], rows))
    parts.append("<h2>Reconstructions</h2>")
    for s in decode:
        parts.append(f"<h3>subj{int(s):02d}</h3>" + _gallery(run_dir, int(s), n_gallery_images))
    evaluation = summary.get("evaluate", {})
    parts.append("<h2>Identification</h2>")
    if not evaluation:
        parts.append("<p>The evaluation stage has not run.</p>")
    for protocol, ev in evaluation.items():
        parts.append(f"<h3>{html.escape(_PROTOCOL_TITLES.get(protocol, protocol))}</h3>")
        chart = run_dir / ev["chart"]
        if chart.exists():
            parts.append(_figure(chart, "Mean score per condition, pooled over subjects, "
                                        "with 95% bootstrap CIs; dashed: chance (0.5)"))  # fmt: skip
        parts.append("<p>Per subject and pooled; identification accuracy has chance 0.5; "
                     "'oracle zc' reconstructs from the true z and c.</p>")  # fmt: skip
        parts.append(_table(ev["table"]["header"], ev["table"]["rows"]))
        parts.append("<p>Two-sided Wilcoxon signed-rank tests between conditions over "
                     "images (Holm-corrected):</p>")  # fmt: skip
        parts.append(_table(ev["tests"]["header"], ev["tests"]["rows"]))
    parts.append("<h2>Metric table and published results</h2>")
    for protocol, ev in evaluation.items():
        if protocol != "takagi":
            parts.append(f"<p>Measured in this run ({html.escape(protocol)} protocol, pooled "
                         "means):</p>" + _table(ev["means"]["header"], ev["means"]["rows"]))
    parts.append("<p>Published, not measured here: NSD test set, mean of subjects 1, 2, 5 "
                 "and 7; MindEye2 (ICML 2024) Table 1.</p>")  # fmt: skip
    parts.append(_table(["method", *PUBLISHED["columns"]],
                        [[k, *v] for k, v in PUBLISHED["rows"].items()]))  # fmt: skip
    parts.append(_human_section(run_dir, [int(s) for s in decode]))
    encode = summary.get("encode", {})
    parts.append("<h2>Encoding models</h2>")
    for s, info in encode.items():
        rows = [[name, m["n_significant"], f"{m['median_r']:.3f}"]
                for name, m in info["models"].items()]  # fmt: skip
        parts.append(f"<h3>subj{int(s):02d} ({info['n_voxels']} voxels)</h3>")
        parts.append(_table(["model", "significant voxels (FDR q=0.05)", "median r"], rows))
        for png in sorted((run_dir / "maps" / f"subj{int(s):02d}").glob("*.png")):
            parts.append(_figure(png, png.stem.replace("_", " ")))
    config = run_dir / "config.toml"
    parts.append("<h2>Configuration</h2><pre>" + html.escape(
        config.read_text() if config.exists() else "") + "</pre>")  # fmt: skip
    parts.append("<h2>Versions</h2>" + _table(["package", "version"], _versions()))
    parts.append("<script>document.title = 'brainldm report';</script></body></html>")
    path = run_dir / "report" / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
    write_json_atomic(run_dir / "report" / "summary.json",
                      {k: v for k, v in summary.items() if k != "report"})  # fmt: skip
    return path
