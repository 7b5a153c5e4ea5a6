"""One self-contained HTML report of a run: galleries, scores, published numbers, maps.

:class:`Report` is a page that sections are added to (as MNE's ``Report``); each
section is a function of the run folder (:data:`SECTIONS`), so a new analysis
adds a section without touching the others.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainldm.pipeline._layout import RunLayout

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


class Report:
    """A self-contained HTML page (images inlined), built section by section.

    Examples
    --------
    >>> report = Report("brainldm report")
    >>> report.add_section("Decoding", "Mean per-image r.")
    >>> report.add_table(["subject", "z"], [["subj01", "0.512"]])
    >>> "<h2>Decoding</h2>" in report.html()
    True
    """

    def __init__(self, title: str = "brainldm report") -> None:
        self.title = title
        self._parts: list[str] = []

    def add_section(self, title: str, text: str | None = None, level: int = 2) -> None:
        """A heading, and a paragraph of plain text."""
        self._parts.append(f"<h{level}>{html.escape(title)}</h{level}>")
        if text:
            self.add_text(text)

    def add_text(self, text: str) -> None:
        """A paragraph of plain text (escaped)."""
        self._parts.append(f"<p>{html.escape(text, quote=False)}</p>")

    def add_html(self, fragment: str) -> None:
        """Markup written by brainldm (not escaped)."""
        self._parts.append(fragment)

    def add_table(self, header: Sequence, rows: Sequence[Sequence]) -> None:
        """A table of values (escaped)."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
                       + "</tr>" for row in rows)  # fmt: skip
        self._parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def add_figure(self, path: str | Path, caption: str) -> None:
        """A PNG file, inlined, with its caption."""
        data = base64.b64encode(Path(path).read_bytes()).decode()
        self._parts.append(
            f'<figure><img style="max-width:100%" alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}'
            "</figcaption></figure>"
        )

    def add_gallery(self, header: Sequence[str], rows: Sequence[Sequence]) -> None:
        """A table of thumbnails: each cell a label, or a list of (image path, alt text)."""

        def cell(value) -> str:
            if isinstance(value, (list, tuple)):
                return "".join(_img(p, alt) for p, alt in value if Path(p).exists())
            return html.escape(str(value))

        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>"
                       for row in rows)  # fmt: skip
        self._parts.append(f'<table class="gallery"><tr>{head}</tr>{body}</table>')

    def html(self) -> str:
        """The page."""
        return "\n".join([
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>",
            *self._parts,
            f"<script>document.title = {json.dumps(self.title)};</script></body></html>",
        ])  # fmt: skip

    def save(self, path: str | Path) -> Path:
        """Write the page atomically."""
        from brainldm._utils import atomic_path

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(self.html())
        return path


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

    run = RunLayout(run_dir)
    if not run.report_summary().exists() or not run.config_toml().exists():
        return None
    summary = json.loads(run.report_summary().read_text())
    config = load_run_config(run.config_toml())
    return write_report(run.root, summary, demo=config.preset == "demo",
                        n_gallery_images=config.report.n_gallery_images)  # fmt: skip


def write_report(
    run_dir: str | Path, summary: dict, demo: bool = False, n_gallery_images: int = 6
) -> Path:
    """Write ``run_dir/report/report.html`` from a run's outputs, one section after another.

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
    from brainldm._utils import write_json_atomic
    from brainldm.pipeline._sections import SECTIONS, ReportInputs

    run = RunLayout(run_dir)
    inputs = ReportInputs(run, summary, demo, n_gallery_images)
    report = Report("brainldm report")
    for section in SECTIONS:
        section(report, inputs)
    path = report.save(run.report())
    write_json_atomic(run.report_summary(), {k: v for k, v in summary.items() if k != "report"})
    return path
