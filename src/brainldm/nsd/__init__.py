"""Read the Natural Scenes Dataset from a local folder, in its real formats.

Paths live in :class:`NSDLayout`; 1-based NSD ids become 0-based ``nsd_id`` once,
when read; volume betas are divided by 300 when read.
"""

from brainldm.nsd._betas import (
    BETA_SCALE,
    betas_file_shape,
    load_betas,
    zscore_rows_inplace,
)
from brainldm.nsd._design import (
    ExpDesign,
    load_expdesign,
    load_responses,
    load_stim_info,
)
from brainldm.nsd._layout import (
    BETA_FORMATS,
    COCO_ANNOTATIONS_ARCHIVE,
    DEFAULT_BETA_TYPE,
    NSD_BUCKET,
    NSD_ROOT_ENV,
    TRANSFORM_DEPTHS,
    NSDLayout,
    resolve_nsd_root,
)
from brainldm.nsd._ncsnr import (
    NSD_MIN_REPEATS,
    load_ncsnr,
    median_ncsnr,
    noise_ceiling_snr,
)
from brainldm.nsd._prepare import (
    StoredBetas,
    SubjectSplit,
    check_split_inputs,
    prepare_subject,
    split_subject,
)
from brainldm.nsd._rois import (
    ATLAS_LABELS,
    STREAMS_LABELS,
    VolumeMask,
    atlas_labels,
    load_fsaverage_roi_mask,
    load_roi_mask,
    load_voxel_set,
    read_ctab,
    voxel_set_name,
)
from brainldm.nsd._stimuli import check_stimulus_inputs, load_captions, load_stimulus_images
from brainldm.nsd._surfaces import (
    SURFACE_FILES,
    SurfaceMesh,
    has_subject_surfaces,
    load_subject_sulc,
    load_subject_surface,
    read_patch,
)
from brainldm.nsd._trials import (
    SPLIT_PRESETS,
    SplitPreset,
    Trials,
    average_repeats,
    load_trials,
    resolve_sessions,
    split_shared,
)

__all__ = [
    # facts of NSD's layout and public copy
    "NSD_BUCKET",
    "COCO_ANNOTATIONS_ARCHIVE",
    "TRANSFORM_DEPTHS",
    "SURFACE_FILES",
    # session presets of the train/test split
    "SPLIT_PRESETS",
    "SplitPreset",
    # layout
    "NSDLayout",
    "NSD_ROOT_ENV",
    "BETA_FORMATS",
    "DEFAULT_BETA_TYPE",
    "resolve_nsd_root",
    # design and trials
    "ExpDesign",
    "load_expdesign",
    "load_stim_info",
    "load_responses",
    "Trials",
    "load_trials",
    "resolve_sessions",
    # stimuli
    "load_stimulus_images",
    "load_captions",
    # ROIs
    "STREAMS_LABELS",
    "ATLAS_LABELS",
    "VolumeMask",
    "read_ctab",
    "atlas_labels",
    "load_roi_mask",
    "load_fsaverage_roi_mask",
    "load_voxel_set",
    "voxel_set_name",
    # betas
    "BETA_SCALE",
    "betas_file_shape",
    "load_betas",
    "zscore_rows_inplace",
    # data quality
    "NSD_MIN_REPEATS",
    "load_ncsnr",
    "median_ncsnr",
    "noise_ceiling_snr",
    "SurfaceMesh",
    "has_subject_surfaces",
    "load_subject_surface",
    "load_subject_sulc",
    "read_patch",
    # split
    "split_shared",
    "average_repeats",
    "SubjectSplit",
    "StoredBetas",
    "split_subject",
    "prepare_subject",
    "check_split_inputs",
    "check_stimulus_inputs",
]
