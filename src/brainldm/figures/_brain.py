"""Figures 6-9: encoding maps of one subject, one map per row, significant voxels only.

Each map is projected onto fsaverage through NSD's transforms when the
subject has them (:func:`brainldm.maps.map_panel`), else drawn as slices. Only
voxels significant after FDR (the model's, or the joint model's for unique
variance) are coloured, as every caption of the paper says; each row states
how many.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class VoxelSpace:
    """Where a subject's encoding voxels lie, to draw their maps.

    Attributes
    ----------
    voxel_indices : ndarray of int, shape (n_voxels, 3)
    volume_shape : (X, Y, Z)
    layout : NSDLayout, optional
        With ``subject``, for the volume → fsaverage transforms.
    subject : int, optional
    """

    voxel_indices: np.ndarray
    volume_shape: tuple
    layout: object = None
    subject: int | None = None

    def panel(self, values: np.ndarray, label: str, **colours):
        """A :class:`~brainldm.maps.MapPanel` of a voxel vector (n_voxels,)."""
        from brainldm.maps import map_panel

        values = np.asarray(values, dtype=float)
        if len(values) != len(self.voxel_indices):
            raise ValueError(f"map {label!r} has {len(values)} values for "
                             f"{len(self.voxel_indices)} voxels.")  # fmt: skip
        return map_panel(values, label, self.voxel_indices, self.volume_shape, self.layout,
                         self.subject, meshes=self._meshes, **colours)  # fmt: skip

    @cached_property
    def _meshes(self):
        """The subject's own surfaces, read once (None: fsaverage or slices)."""
        from brainldm.maps import on_surface, subject_meshes
        from brainldm.nsd import has_subject_surfaces

        if on_surface(self.layout, self.subject) and has_subject_surfaces(self.layout,
                                                                          self.subject):
            return subject_meshes(self.layout, self.subject)
        return None

    def table(self, columns: dict):
        """Voxel coordinates and one column per map (NaN: not coloured)."""
        import pandas as pd

        idx = np.asarray(self.voxel_indices)
        frame = {"i": idx[:, 0], "j": idx[:, 1], "k": idx[:, 2]}
        return pd.DataFrame({**frame, **{k: np.asarray(v, dtype=float) for k, v in columns.items()}})


def _draw(space: VoxelSpace, columns: dict, kinds, title: str, **colours):
    from brainldm.maps import plot_map_rows

    panels = [space.panel(values, label, **colours) for label, values in columns.items()]
    return plot_map_rows(panels, kinds=kinds, title=title), space.table(columns)


def _common_max(columns: dict, symmetric: bool) -> float:
    values = np.concatenate([np.asarray(v, dtype=float) for v in columns.values()])
    values = values[np.isfinite(values)]
    if not values.size:
        return 1.0
    return float(np.abs(values).max() if symmetric else values.max()) or 1.0


def figure_6(analyses, models: Sequence[str], space: VoxelSpace,
             kinds: Sequence[str] = ("inflated", "flat"), subject_label: str = ""):  # fmt: skip
    """Figure 6: accuracy (Pearson r) of the z, c and zc models, significant voxels only.

    Parameters
    ----------
    analyses : EncodingAnalyses
    models : sequence of str
        Models (rows), e.g. ``("z", "c", "zc_s0.50_f1.00")``.
    space : VoxelSpace
    kinds : sequence of {"inflated", "flat"}
    subject_label : str

    Returns
    -------
    figure : matplotlib.figure.Figure
    table : pandas.DataFrame
        ``i, j, k`` and one column per model: r where significant (FDR), else NaN.
    """
    missing = [m for m in models if m not in analyses.results]
    if missing:
        raise KeyError(f"models {missing} are not in the analyses; have {list(analyses.results)}.")
    columns = {m: np.where(analyses.results[m].significant, analyses.results[m].r, np.nan)
               for m in models}  # fmt: skip
    q = analyses.results[models[0]].q
    title = (f"Figure 6. Prediction accuracy (r){', ' + subject_label if subject_label else ''}; "
             f"coloured: P < {q:g}, FDR corrected")  # fmt: skip
    return _draw(space, columns, kinds, title, cmap="hot", vmin=0.0,
                 vmax=_common_max(columns, symmetric=False))  # fmt: skip


def _q(analyses) -> float:
    """The FDR level the analyses were tested at (every model shares it)."""
    return next(iter(analyses.results.values())).q


def _unique_figure(analyses, pairs, space, kinds, title):
    if not pairs:
        raise ValueError("no joint models to draw: pairs is empty.")
    title += f"; joint model P < {_q(analyses):g}, FDR"
    columns = {label: analyses.unique_contrast(a, b) for label, (a, b) in pairs}
    reading = {"split": "split of the joint model's R²", "difference": "R²(joint) − R²(other)"}
    title += f"\n{reading.get(analyses.unique_reading, analyses.unique_reading)}; red: zc, blue: z"
    return _draw(space, columns, kinds, title, cmap="RdBu_r",
                 vmax=_common_max(columns, symmetric=True))  # fmt: skip


def figure_7(analyses, pairs: Sequence[tuple[str, tuple[str, str]]], space: VoxelSpace,
             kinds: Sequence[str] = ("inflated", "flat"), subject_label: str = ""):  # fmt: skip
    """Figure 7: unique variance of zc minus that of z, across noise levels.

    Parameters
    ----------
    analyses : EncodingAnalyses
    pairs : sequence of (label, (a, b))
        Rows, low to high noise: the joint model ``a + b`` (a = z, b = zc at a
        noise level) and its row label.
    space : VoxelSpace
    kinds : sequence of {"inflated", "flat"}
    subject_label : str

    Returns
    -------
    figure : matplotlib.figure.Figure
    table : pandas.DataFrame
        ``i, j, k`` and one column per row: unique(b) − unique(a) where the joint
        model is significant (FDR), else NaN.
    """
    who = f", {subject_label}" if subject_label else ""
    return _unique_figure(analyses, pairs, space, kinds,
                          f"Figure 7. Unique variance of zc vs z across noise levels{who}")  # fmt: skip


def figure_8(analyses, pairs: Sequence[tuple[str, tuple[str, str]]], space: VoxelSpace,
             kinds: Sequence[str] = ("inflated", "flat"), subject_label: str = ""):  # fmt: skip
    """Figure 8: unique variance of zc minus that of z, across denoising stages.

    As :func:`figure_7`, the rows being zc at one noise level recorded at
    successive stages of the denoising (early to late).
    """
    who = f", {subject_label}" if subject_label else ""
    return _unique_figure(analyses, pairs, space, kinds,
                          f"Figure 8. Unique variance of zc vs z across denoising stages{who}")  # fmt: skip


def layer_label(name: str) -> str:
    """A U-Net layer's short name from its feature set's (``unet_mid_block_s0.50_f1.00`` → ``mid_block``)."""
    base = name.rsplit("_s", 1)[0] if "_s" in name else name
    return base.removeprefix("unet_")


def figure_9(analyses, space: VoxelSpace, kinds: Sequence[str] = ("inflated", "flat"),
             subject_label: str = "", row_labels: dict | None = None):  # fmt: skip
    """Figure 9: the most predictive U-Net layer of each voxel, per denoising stage.

    Parameters
    ----------
    analyses : EncodingAnalyses
        Its ``best_layers`` (one row per layer set, e.g. stage) and ``layer_names``.
    space : VoxelSpace
    kinds : sequence of {"inflated", "flat"}
    subject_label : str
    row_labels : dict of str to str, optional
        Label of each layer set (default: the set's name).

    Returns
    -------
    figure : matplotlib.figure.Figure
    table : pandas.DataFrame
        ``i, j, k`` and one column per layer set: the index of the best layer
        among those significant (FDR) for the voxel, NaN where none is.
    """
    if not analyses.best_layers:
        raise ValueError("the analyses have no layer sets (features.unet_layers is empty).")
    names = [[layer_label(n) for n in analyses.layer_names[k]] for k in analyses.best_layers]
    if any(n != names[0] for n in names):
        raise ValueError(f"the layer sets list different layers: {names}.")
    row_labels = row_labels or {}
    columns = {}
    for key in analyses.best_layers:
        columns[row_labels.get(key, key)] = analyses.best_layer_map(key)
    who = f", {subject_label}" if subject_label else ""
    return _draw(space, columns, kinds,
                 f"Figure 9. Most predictive U-Net layer per voxel, early to late stages{who}; "
                 f"coloured: P < {_q(analyses):g}, FDR", labels=names[0])  # fmt: skip
