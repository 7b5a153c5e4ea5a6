"""Per-voxel results as volumes, fsaverage maps and pictures."""

from brainldm.maps._maps import (
    FSAVERAGE5_VERTICES,
    draw_map,
    mask_volume,
    plot_surface,
    plot_volume_mosaic,
    save_figure,
    unmask,
    volume_to_fsaverage,
)

__all__ = [
    "draw_map",
    "unmask",
    "mask_volume",
    "volume_to_fsaverage",
    "plot_surface",
    "plot_volume_mosaic",
    "save_figure",
    "FSAVERAGE5_VERTICES",
]
