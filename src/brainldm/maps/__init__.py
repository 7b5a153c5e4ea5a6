"""Per-voxel results as volumes, fsaverage maps and pictures."""

from brainldm.maps._panels import MapPanel, map_panel
from brainldm.maps._plotting import (
    draw_map,
    plot_map_rows,
    plot_surface,
    plot_surface_rows,
    plot_volume_mosaic,
    plot_volume_rows,
    save_figure,
)
from brainldm.maps._projection import (
    FSAVERAGE5_VERTICES,
    mask_volume,
    on_surface,
    subject_meshes,
    unmask,
    volume_to_fsaverage,
    volume_to_native,
)

__all__ = [
    "draw_map",
    "unmask",
    "mask_volume",
    "volume_to_fsaverage",
    "volume_to_native",
    "subject_meshes",
    "on_surface",
    "MapPanel",
    "map_panel",
    "plot_map_rows",
    "plot_surface_rows",
    "plot_volume_rows",
    "plot_surface",
    "plot_volume_mosaic",
    "save_figure",
    "FSAVERAGE5_VERTICES",
]
