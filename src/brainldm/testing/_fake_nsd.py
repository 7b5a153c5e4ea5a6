"""A synthetic NSD in the real on-disk formats, with a planted, known signal.

:func:`write_fake_nsd` writes the NSD tree that :class:`brainldm.nsd.NSDLayout`
reads: the same file names, dataset and variable names, dtypes, axis orders,
1-based ids and int16 × 300 scaling as the real release, at small sizes.
Every size differs from every other (grid axes, trials, images), so a
swapped axis or an off-by-one id fails loudly.

The signal: "early" voxels respond linearly to features of the image's
appearance, "ventral" voxels to features of its captions' words, every other
brain voxel to noise only. Both feature functions can be replaced, e.g. by the
LDM's own z and c.

The subject's cortex is either a spherical shell with ROI bands along one axis
(``cortex="shell"``, the default), or real cortex: nilearn's fsaverage5 placed in
the grid, with anatomical streams labels and NSD's transforms onto fsaverage
(``cortex="fsaverage5"``, see ``_fake_cortex``), so that maps show regions.

The writing is split by part of the release: the design and behaviour
(``_fake_design``), the images, captions and stimulus table (``_fake_stimuli``)
and each subject's volumes and betas (``_fake_subject``). All draw from one
random generator, in a fixed order, so a seed gives the same files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainldm._utils import check_choices, check_option, check_positive_int
from brainldm.nsd import NSDLayout, Trials
from brainldm.testing._fake_design import _subject_trials, _write_design
from brainldm.testing._fake_stimuli import (
    FeatureFunction,
    _standardise,
    _write_stim_info,
    _write_stimuli,
    appearance_features,
    semantic_features,
)
from brainldm.testing._fake_ncsnr import _write_ncsnr
from brainldm.testing._fake_surfaces import fsaverage5_surfaces, write_subject_surfaces
from brainldm.testing._fake_subject import _write_ctabs, _write_subject

logger = logging.getLogger(__name__)


@dataclass
class FakeNSD:
    """What :func:`write_fake_nsd` wrote, and the truth planted in it.

    Attributes
    ----------
    root : Path
    layout : NSDLayout
    subjects : tuple of int
    sessions : dict of int to list of int
        Sessions written per subject (numbered from 1).
    trials : dict of int to Trials
        Every trial of each subject, chronological.
    shared_nsd_ids : ndarray of int, shape (n_shared,)
        0-based ids of the shared images, in ``sharedix`` order.
    image_nsd_ids : ndarray of int, shape (n_used_images,)
        Sorted 0-based ids of every image written to ``imgBrick``.
    features : dict of str to ndarray of shape (n_used_images, n_features)
        ``"early"`` and ``"ventral"`` features, standardised, rows as ``image_nsd_ids``.
    weights : dict of int to dict of str to ndarray of shape (n_features, n_voxels)
        Planted weights per subject and ROI; columns follow ``np.argwhere`` of the
        ROI mask (the order of :attr:`brainldm.nsd.VolumeMask.voxel_indices`).
        ``"early"`` multiplies ``features["early"]``, ``"ventral"`` and (with
        ``cortex="fsaverage5"`` only) ``"lateral"`` multiply ``features["ventral"]``.
    captions : dict of int to list of str
        Captions per ``nsd_id``.
    volumes : dict of int to dict of str to ndarray of shape (X, Y, Z)
        ``brainmask``, ``streams`` and ``nsdgeneral`` volumes per subject.
    betas : dict of int to ndarray of shape (n_trials, X, Y, Z), or None
        Stored betas in percent signal change (int16 / 300), rows as ``trials``.
    fsaverage_betas : dict of int to ndarray of shape (n_trials, n_vertices), or None
        lh then rh vertices.
    bad_voxels : dict of int to tuple of (int, ndarray of shape (n_bad, 3))
        Session and (x, y, z) of the voxels left all-zero in that session.
    """

    root: Path
    layout: NSDLayout
    subjects: tuple[int, ...]
    sessions: dict[int, list[int]]
    trials: dict[int, Trials]
    shared_nsd_ids: np.ndarray
    image_nsd_ids: np.ndarray
    features: dict[str, np.ndarray]
    weights: dict[int, dict[str, np.ndarray]]
    captions: dict[int, list[str]]
    volumes: dict[int, dict[str, np.ndarray]]
    betas: dict[int, np.ndarray] | None = None
    fsaverage_betas: dict[int, np.ndarray] | None = None
    bad_voxels: dict[int, tuple[int, np.ndarray]] = field(default_factory=dict)
    n_trials_per_session: int = 0

    def feature_rows(self, nsd_ids: np.ndarray) -> np.ndarray:
        """Row of each ``nsd_id`` in :attr:`features`."""
        return np.searchsorted(self.image_nsd_ids, np.asarray(nsd_ids))


def write_fake_nsd(
    root: str | os.PathLike,
    *,
    subjects: Sequence[int] = (1,),
    n_sessions: int | Mapping[int, int] = 3,
    n_trials_per_session: int = 30,
    n_design_sessions: int | None = None,
    n_shared: int = 11,
    n_stimuli: int = 4000,
    volume_shape: tuple[int, int, int] = (10, 12, 8),
    image_size: int = 64,
    n_captions: tuple[int, int] = (5, 7),
    n_fsaverage_vertices: int | None = 37,
    n_native_vertices: int | None = None,
    noise_std: float = 0.5,
    signal_std: float = 1.0,
    early_features: FeatureFunction | None = None,
    ventral_features: FeatureFunction | None = None,
    formats: Sequence[str] = ("hdf5", "nifti", "fsaverage"),
    keep_betas: bool = True,
    n_written_sessions: int | None = None,
    brain_voxels: int | None = None,
    cortex: str = "shell",
    random_state: int | None = 0,
) -> FakeNSD:
    """Write a small NSD in the real formats, with a known planted signal.

    Parameters
    ----------
    root : path-like
        Folder to write into (becomes the NSD root).
    subjects : sequence of int
        Subject numbers (``subj01`` is 1); any number of them.
    n_sessions : int or mapping of int to int
        Sessions written per subject (NSD: 40, 40, 32, 30, 40, 32, 40, 30).
    n_trials_per_session : int
        Trials per session (NSD: 750).
    n_design_sessions : int, optional
        Sessions in the experimental design (NSD: 40); default one more than the
        largest ``n_sessions``, so that some images are seen only once or twice.
        ``n_design_sessions × n_trials_per_session`` must be a multiple of 3:
        every image of a subject is planned three times.
    n_shared : int
        Images shown to every subject (NSD: 1000), the test set.
    n_stimuli : int
        Rows of ``imgBrick`` and of the stimulus table (NSD: 73000). Only the
        images actually shown are written (HDF5 allocates chunks lazily).
    volume_shape : tuple of 3 int
        (X, Y, Z) func grid (NSD subj01: 81 × 104 × 83).
    image_size : int
        Image side in pixels (NSD: 425).
    n_captions : (int, int)
        Inclusive range of captions per image (COCO: 5, sometimes 6-7).
    n_fsaverage_vertices : int or None
        Vertices per hemisphere of the fsaverage betas (fsaverage: 163842).
    n_native_vertices : int or None
        If set, write NSD's volume → surface → fsaverage transforms
        (``transforms/{hemi}.func1pt8-to-layerB{1,2,3}.mgz`` with this many native
        vertices per hemisphere, and ``{hemi}.white-to-fsaverage.mgz`` with
        10,242 fsaverage vertices, i.e. fsaverage5, instead of 163,842). With
        ``cortex="fsaverage5"`` the transforms are always written and the native
        vertices are fsaverage5's 10,242 (None or 10242 only).
    noise_std, signal_std : float
        Percent signal change of the trial noise and of the planted response.
    early_features, ventral_features : callable, optional
        ``fn(images, captions) -> (n_images, n_features)`` planted in the ``early``
        and ``ventral`` voxels. Default :func:`appearance_features` and
        :func:`semantic_features`. Features are standardised before planting.
    formats : sequence of {"hdf5", "nifti", "fsaverage"}
        Beta copies to write.
    keep_betas : bool
        Keep the written betas in the returned record (turn off for large grids).
    n_written_sessions : int, optional
        Write the volume betas of this many sessions only; every later session's
        file is a hard link to one of them, in turn (a benchmark at NSD's size on
        a small disk: the trials and design are NSD's, the beta values repeat).
        Needs ``keep_betas=False`` and no fsaverage betas.
    brain_voxels : int, optional
        Keep this many voxels in ``brainmask.nii.gz`` (those nearest the centre
        of the ellipsoid brain; default: the whole ellipsoid, about 45 % of the grid).
        ``cortex="shell"`` only.
    cortex : {"shell", "fsaverage5"}
        The subject's anatomy. ``"shell"``: a spherical shell of cortex, ROIs in
        bands along y, random transforms (maps show scattered dots). ``"fsaverage5"``:
        nilearn's bundled fsaverage5 (needs the ``maps`` extra) scaled into
        ``volume_shape`` (isotropic voxels, one empty voxel around the brain; the
        NIfTI affines and zooms say where), streams ROIs by anatomical position
        (early at the occipital pole, ventral and lateral occipito-temporal,
        parietal ...), lateral voxels planted with the ventral features too, and
        transforms through which maps paint regions of fsaverage. A grid of
        22 × 27 × 21 gives 7.3 mm voxels, about 4,400 brain and 3,700 cortex voxels.
    random_state : int or None
        Seed of everything drawn.

    Returns
    -------
    fake : FakeNSD
        Paths and the planted truth.
    """
    rng = np.random.default_rng(random_state)
    root = Path(root)
    subjects = tuple(int(s) for s in subjects)
    check_choices("formats", formats, ("hdf5", "nifti", "fsaverage"))
    check_option("cortex", cortex, ("shell", "fsaverage5"))
    if cortex == "fsaverage5":
        if brain_voxels is not None:
            raise ValueError("brain_voxels applies to cortex='shell' only.")
        if n_native_vertices not in (None, 10242):
            raise ValueError(
                f"n_native_vertices={n_native_vertices}: with cortex='fsaverage5' the native "
                "vertices are fsaverage5's, 10242 per hemisphere (give None or 10242)."
            )
    sessions_of = {
        s: int(n_sessions[s] if isinstance(n_sessions, Mapping) else n_sessions) for s in subjects
    }
    T = check_positive_int("n_trials_per_session", n_trials_per_session)
    # By default one planned session is never run, so images have 1, 2 or 3 repeats.
    D = max(sessions_of.values()) + 1 if n_design_sessions is None else n_design_sessions
    if D < max(sessions_of.values()):
        raise ValueError(f"n_design_sessions={D} is smaller than n_sessions {sessions_of}.")
    if (D * T) % 3:
        raise ValueError(
            f"n_design_sessions × n_trials_per_session = {D * T} must be a multiple of 3."
        )
    n_per_subject = D * T // 3  # NSD: 10,000 images per subject, each planned 3 times
    if not 1 <= n_shared <= n_per_subject:
        raise ValueError(f"n_shared={n_shared} must be between 1 and {n_per_subject}.")
    n_subject_rows = max(8, max(subjects))
    n_needed = n_shared + n_subject_rows * (n_per_subject - n_shared)
    if n_stimuli < n_needed:
        raise ValueError(f"n_stimuli={n_stimuli} is too small; need at least {n_needed}.")
    if n_written_sessions is not None:
        check_positive_int("n_written_sessions", n_written_sessions)
        if keep_betas or "fsaverage" in formats:
            raise ValueError("n_written_sessions needs keep_betas=False and no 'fsaverage' format.")
    layout = NSDLayout(root)

    # -- experimental design (1-based on disk) --------------------------------
    shared, subjectim, masterordering = _write_design(
        layout, rng, n_stimuli=n_stimuli, n_needed=n_needed, n_shared=n_shared,
        n_subject_rows=n_subject_rows, n_per_subject=n_per_subject, n_design_sessions=D,
    )  # fmt: skip

    # -- trials ------------------------------------------------------------------
    trials: dict[int, Trials] = {
        s: _subject_trials(s, sessions_of[s], T, subjectim, masterordering) for s in subjects
    }
    used = np.unique(np.concatenate([t.nsd_ids for t in trials.values()]))

    # -- images and captions, then the stimulus table ----------------------------
    images, captions, coco_ids, coco_split = _write_stimuli(
        layout, rng, used, n_stimuli, image_size, n_captions
    )
    _write_stim_info(layout, rng, coco_ids, coco_split, shared, subjectim, trials)

    # -- features, planted per ROI ----------------------------------------------------
    caption_list = [captions[int(i)] for i in used]
    features = {
        "early": _standardise(
            np.asarray((early_features or appearance_features)(images, caption_list), float)
        ),
        "ventral": _standardise(
            np.asarray((ventral_features or semantic_features)(images, caption_list), float)
        ),
    }

    # -- per subject: behaviour, ROIs, betas ---------------------------------------
    _write_ctabs(layout)
    options = dict(
        T=T, volume_shape=volume_shape, n_fsaverage_vertices=n_fsaverage_vertices,
        n_native_vertices=n_native_vertices, noise_std=noise_std, signal_std=signal_std,
        formats=formats, keep_betas=keep_betas, n_written_sessions=n_written_sessions,
        brain_voxels=brain_voxels, cortex=cortex,
    )  # fmt: skip
    truth = {}
    for s in subjects:  # in order: they draw from rng in turn
        truth[s] = _write_subject(
            layout, rng, s, trials[s], features, used, n_sessions=sessions_of[s], **options
        )
        # NSD's data quality beside the betas, computed from them (draws nothing)
        _write_ncsnr(layout, s, trials[s], formats, n_written_sessions)
        if cortex == "fsaverage5":  # the subject's own surfaces are fsaverage5's (draws nothing)
            write_subject_surfaces(layout, s, fsaverage5_surfaces())
    all_betas = {s: t.betas for s, t in truth.items() if t.betas is not None}
    all_fs = {s: t.fsaverage_betas for s, t in truth.items() if t.fsaverage_betas is not None}
    logger.info("wrote a synthetic NSD for subjects %s under %s", subjects, root)
    return FakeNSD(
        root=root,
        layout=layout,
        subjects=subjects,
        sessions={s: list(range(1, sessions_of[s] + 1)) for s in subjects},
        trials=trials,
        shared_nsd_ids=shared,
        image_nsd_ids=used,
        features=features,
        weights={s: t.weights for s, t in truth.items()},
        captions=captions,
        volumes={s: t.volumes for s, t in truth.items()},
        betas=all_betas if keep_betas else None,
        fsaverage_betas=all_fs if keep_betas and all_fs else None,
        bad_voxels={s: t.bad_voxels for s, t in truth.items()},
        n_trials_per_session=T,
    )
