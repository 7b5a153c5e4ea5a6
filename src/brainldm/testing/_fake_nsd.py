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
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainldm.nsd import STREAMS_LABELS, NSDLayout, Trials
from brainldm.nsd._betas import BETA_SCALE

logger = logging.getLogger(__name__)

#: ``fn(images, captions) -> features``: images (n, S, S, 3) uint8, captions a list
#: of n lists of str; returns an array of shape (n, n_features).
FeatureFunction = Callable[[np.ndarray, list[list[str]]], np.ndarray]

_COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 215, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "purple": (140, 50, 170),
    "orange": (245, 140, 30),
}
_SHAPES = ("circle", "square", "triangle", "cross")
_PLACES = ("left", "right", "top", "bottom", "middle")
_BACKGROUNDS = ("sky", "grass", "sand", "wall", "water")
_BACKGROUND_COLORS = {
    "sky": ((120, 170, 235), (200, 225, 250)),
    "grass": ((60, 140, 50), (120, 190, 90)),
    "sand": ((210, 180, 120), (240, 220, 170)),
    "wall": ((120, 120, 120), (190, 190, 190)),
    "water": ((20, 80, 140), (60, 140, 190)),
}
_TEMPLATES = (
    "a {color} {shape} on the {place} in front of the {bg}",
    "a picture of a {color} {shape} with {bg} behind it",
    "there is a {color} {shape} near the {place} of the image",
    "a {shape} coloured {color} over a {bg} background",
    "the {bg} and one {color} {shape}",
    "an image showing a {color} {shape} at the {place}",
    "a simple scene of a {shape} that is {color}",
)
#: Words the default semantic features count.
VOCABULARY: tuple[str, ...] = (*_COLORS, *_SHAPES, *_PLACES, *_BACKGROUNDS)

_RESPONSES_COLUMNS = (
    "SUBJECT", "SESSION", "RUN", "TRIAL", "73KID", "10KID", "TIME", "ISOLD", "ISCORRECT",
    "RT", "CHANGEMIND", "MEMORYRECENT", "MEMORYFIRST", "ISOLDCURRENT", "ISCORRECTCURRENT",
    "TOTAL1", "TOTAL2", "BUTTON", "MISSINGDATA",
)  # fmt: skip
_RUNS_PER_SESSION = 12
_VOXEL_MM = 1.8


def appearance_features(images: np.ndarray, captions: list[list[str]]) -> np.ndarray:
    """Default early-visual features: the image average-pooled to 4 × 4 RGB (48 values).

    Parameters
    ----------
    images : ndarray of uint8, shape (n_images, S, S, 3)
    captions : list of list of str
        Unused.

    Returns
    -------
    features : ndarray of shape (n_images, 48)
    """
    n, size = images.shape[0], images.shape[1]
    cells = 4
    edges = np.linspace(0, size, cells + 1).astype(int)
    out = np.empty((n, cells, cells, 3))
    for i in range(cells):
        for j in range(cells):
            block = images[:, edges[i] : edges[i + 1], edges[j] : edges[j + 1]]
            out[:, i, j] = block.mean(axis=(1, 2)) / 255.0
    return out.reshape(n, -1)


def semantic_features(images: np.ndarray, captions: list[list[str]]) -> np.ndarray:
    """Default ventral features: how often each :data:`VOCABULARY` word is in the captions.

    Returns
    -------
    features : ndarray of shape (n_images, len(VOCABULARY))
        Mean count per caption.
    """
    index = {w: k for k, w in enumerate(VOCABULARY)}
    out = np.zeros((len(captions), len(VOCABULARY)))
    for i, caps in enumerate(captions):
        for cap in caps:
            for word in cap.lower().split():
                if word in index:
                    out[i, index[word]] += 1.0 / len(caps)
    return out


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


def _draw_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    """An image with a nameable content: a coloured shape on a textured background."""
    bg = _BACKGROUNDS[rng.integers(len(_BACKGROUNDS))]
    top, bottom = (np.array(c, float) for c in _BACKGROUND_COLORS[bg])
    t = np.linspace(0, 1, size)[:, None, None]
    image = top * (1 - t) + bottom * t + np.zeros((size, size, 3))
    image += rng.normal(0, 6, (size, size, 3))  # texture
    color = list(_COLORS)[rng.integers(len(_COLORS))]
    shape = _SHAPES[rng.integers(len(_SHAPES))]
    place = _PLACES[rng.integers(len(_PLACES))]
    centre = {
        "left": (0.5, 0.27), "right": (0.5, 0.73), "top": (0.27, 0.5),
        "bottom": (0.73, 0.5), "middle": (0.5, 0.5),
    }[place]  # fmt: skip
    cy, cx = (np.array(centre) + rng.uniform(-0.05, 0.05, 2)) * size
    radius = rng.uniform(0.14, 0.22) * size
    yy, xx = np.mgrid[0:size, 0:size]
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        inside = dy**2 + dx**2 <= radius**2
    elif shape == "square":
        inside = (np.abs(dy) <= radius * 0.85) & (np.abs(dx) <= radius * 0.85)
    elif shape == "triangle":
        inside = (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.6)
    else:
        arm = radius * 0.3
        inside = ((np.abs(dy) <= arm) & (np.abs(dx) <= radius)) | (
            (np.abs(dx) <= arm) & (np.abs(dy) <= radius)
        )
    image[inside] = _COLORS[color]
    content = {"color": color, "shape": shape, "place": place, "bg": bg}
    return np.clip(image, 0, 255).astype(np.uint8), content


def _captions_for(rng: np.random.Generator, content: Mapping[str, str], n: int) -> list[str]:
    picks = rng.choice(len(_TEMPLATES), size=n, replace=False)
    captions = [_TEMPLATES[k].format(**content) for k in picks]
    return [c.replace("a orange", "an orange") for c in captions]


def _standardise(F: np.ndarray) -> np.ndarray:
    F = F - F.mean(axis=0)
    std = F.std(axis=0)
    return F / np.where(std > 0, std, 1)


def _roi_volumes(
    rng: np.random.Generator, shape: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    """Brain mask, streams and nsdgeneral volumes with NSD's -1 / 0 / label values."""
    X, Y, Z = shape
    g = np.stack(
        np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij"), axis=-1
    )
    r = np.sqrt((g**2).sum(-1))
    brain = r <= 0.95
    cortex = brain & (r >= 0.45)  # a shell; the inside is "non-cortical"
    streams = np.full(shape, -1, dtype=np.int16)
    streams[cortex] = 0
    # Labels in the posterior half of the cortex, in bands along y (posterior -> anterior).
    labelled = cortex & (g[..., 1] < 0.1)
    order = np.argsort(g[..., 1][labelled] + 0.05 * rng.standard_normal(labelled.sum()))
    bands = np.array_split(order, len(STREAMS_LABELS))
    values = np.empty(labelled.sum(), dtype=np.int16)
    for label, band in zip(sorted(STREAMS_LABELS.values()), bands, strict=True):
        values[band] = label
    streams[labelled] = values
    nsdgeneral = np.where(cortex, 0, -1).astype(np.int16)
    nsdgeneral[np.isin(streams, [1, 2, 3, 5, 6])] = 1
    return {"brainmask": brain.astype(np.uint8), "streams": streams, "nsdgeneral": nsdgeneral}


def _write_nifti(path: Path, data: np.ndarray, zooms: Sequence[float]) -> None:
    import nibabel as nib

    from brainldm._utils import atomic_path

    affine = np.diag([-_VOXEL_MM, _VOXEL_MM, _VOXEL_MM, 1.0])  # LPI-ish, like NSD
    affine[:3, 3] = -np.array(data.shape[:3]) * _VOXEL_MM / 2 * np.array([-1, 1, 1])
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms(tuple(zooms))
    img.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def _write_mgh(path: Path, data: np.ndarray) -> None:
    import nibabel as nib

    from brainldm._utils import atomic_path

    with atomic_path(path) as tmp:
        nib.save(nib.MGHImage(data.astype(np.float32), np.eye(4)), tmp)


def _masterordering(rng: np.random.Generator, n_images: int) -> np.ndarray:
    """0-based image of each design trial: every image 3 times, new ones until the end.

    As in NSD, images keep being introduced throughout the sessions, and an
    image's repeats follow its first showing; so dropping the last sessions
    drops some images entirely and leaves others with 1 or 2 repeats.
    """
    t1 = rng.random(n_images)
    t2 = t1 + (1 - t1) * rng.random(n_images)
    t3 = t2 + (1 - t2) * rng.random(n_images)
    times = np.concatenate([t1, t2, t3])
    return np.tile(np.arange(n_images), 3)[np.argsort(times, kind="stable")]


def _runs(n_trials: int) -> tuple[np.ndarray, np.ndarray]:
    """RUN (1-based) and TRIAL within run (1-based) for one session, NSD's 12 runs."""
    n_runs = min(_RUNS_PER_SESSION, n_trials)
    sizes = np.full(n_runs, n_trials // n_runs)
    extra = n_trials - sizes.sum()
    # Odd runs (1, 3, ...) take the extra trials first: 63 vs 62 in NSD's 750.
    odd_first = np.r_[np.arange(0, n_runs, 2), np.arange(1, n_runs, 2)]
    sizes[odd_first[:extra]] += 1
    run = np.repeat(np.arange(1, n_runs + 1), sizes)
    trial = np.concatenate([np.arange(1, s + 1) for s in sizes])
    return run, trial


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
        10,242 fsaverage vertices, i.e. fsaverage5, instead of 163,842).
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
    random_state : int or None
        Seed of everything drawn.

    Returns
    -------
    fake : FakeNSD
        Paths and the planted truth.
    """
    import h5py
    import pandas as pd
    from scipy.io import savemat

    from brainldm._utils import atomic_path, check_choices, check_positive_int, write_json_atomic

    rng = np.random.default_rng(random_state)
    root = Path(root)
    subjects = tuple(int(s) for s in subjects)
    check_choices("formats", formats, ("hdf5", "nifti", "fsaverage"))
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
    layout = NSDLayout(root)

    # -- experimental design (1-based on disk) --------------------------------
    universe = rng.permutation(n_stimuli)[:n_needed]
    shared = universe[:n_shared]
    own = universe[n_shared:].reshape(n_subject_rows, -1)
    subjectim = np.concatenate([np.tile(shared, (n_subject_rows, 1)), own], axis=1)
    masterordering = _masterordering(rng, n_per_subject)
    path = layout.expdesign()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        savemat(
            tmp,
            {
                "masterordering": (masterordering + 1).astype(float)[None, :],
                "subjectim": (subjectim + 1).astype(float),
                "sharedix": (shared + 1).astype(float)[None, :],
                "basiccnt": np.zeros((3, D)),
                "stimpattern": np.zeros((D, _RUNS_PER_SESSION, 75)),
            },
        )

    # -- trials ------------------------------------------------------------------
    trials: dict[int, Trials] = {}
    for s in subjects:
        n = sessions_of[s] * T
        trials[s] = Trials(
            subject=s,
            sessions=np.repeat(np.arange(1, sessions_of[s] + 1), T),
            trials=np.tile(np.arange(T), sessions_of[s]),
            nsd_ids=subjectim[s - 1, masterordering[:n]],
        )
    used = np.unique(np.concatenate([t.nsd_ids for t in trials.values()]))

    # -- images and captions -------------------------------------------------------
    images = np.empty((len(used), image_size, image_size, 3), dtype=np.uint8)
    captions: dict[int, list[str]] = {}
    for k, nsd_id in enumerate(used):
        images[k], content = _draw_image(rng, image_size)
        n_cap = int(rng.integers(n_captions[0], n_captions[1] + 1))
        captions[int(nsd_id)] = _captions_for(rng, content, n_cap)
    path = layout.stimuli()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        brick = f.create_dataset(
            "imgBrick",
            shape=(n_stimuli, image_size, image_size, 3),
            dtype=np.uint8,
            chunks=(1, image_size, image_size, 3),
        )
        for k, nsd_id in enumerate(used):
            brick[nsd_id] = images[k]

    coco_ids = rng.choice(np.arange(1, 20 * n_stimuli), size=n_stimuli, replace=False)
    coco_split = np.where(rng.random(n_stimuli) < 0.2, "val2017", "train2017")
    for split in ("train2017", "val2017"):
        ids = [int(i) for i in used if coco_split[i] == split]
        annotations, ann_id = [], 1
        for i in ids:
            for cap in captions[i]:
                annotations.append({"image_id": int(coco_ids[i]), "id": ann_id, "caption": cap})
                ann_id += 1
        write_json_atomic(
            layout.captions(split),
            {
                "info": {"description": "brainldm synthetic COCO captions"},
                "licenses": [],
                "images": [
                    {"id": int(coco_ids[i]), "file_name": f"{int(coco_ids[i]):012d}.jpg",
                     "height": image_size, "width": image_size}
                    for i in ids
                ],  # fmt: skip
                "annotations": annotations,
            },
        )

    # -- stimulus table ------------------------------------------------------------
    info = pd.DataFrame(
        {
            "cocoId": coco_ids,
            "cocoSplit": coco_split,
            "cropBox": ["(0, 0, 0.1671875, 0.1671875)"] * n_stimuli,
            "loss": np.round(rng.random(n_stimuli) * 0.2, 4),
            "nsdId": np.arange(n_stimuli),
            "flagged": False,
            "BOLD5000": False,
            "shared1000": np.isin(np.arange(n_stimuli), shared),
        }
    )
    n_csv_subjects = n_subject_rows
    for s in range(1, n_csv_subjects + 1):
        info[f"subject{s}"] = np.isin(np.arange(n_stimuli), subjectim[s - 1]).astype(int)
    for s in range(1, n_csv_subjects + 1):
        reps = np.zeros((n_stimuli, 3), dtype=int)
        if s in trials:
            seen = np.zeros(n_stimuli, dtype=int)
            for g, nsd_id in enumerate(trials[s].nsd_ids):
                reps[nsd_id, seen[nsd_id]] = g + 1  # 1-based trial number
                seen[nsd_id] += 1
        for r in range(3):
            info[f"subject{s}_rep{r}"] = reps[:, r]
    with atomic_path(layout.stim_info()) as tmp:
        info.to_csv(tmp)

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
    weights: dict[int, dict[str, np.ndarray]] = {}
    volumes: dict[int, dict[str, np.ndarray]] = {}
    all_betas: dict[int, np.ndarray] = {}
    all_fs: dict[int, np.ndarray] = {}
    bad_voxels: dict[int, tuple[int, np.ndarray]] = {}
    ctab_dir = layout.ctab("streams").parent
    ctab_dir.mkdir(parents=True, exist_ok=True)
    layout.ctab("streams").write_text(
        "0 Unknown\n" + "".join(f"{v} {k}\n" for k, v in STREAMS_LABELS.items())
    )
    layout.ctab("nsdgeneral").write_text("0 Unknown\n1 nsdgeneral\n")
    for s in subjects:
        tr = trials[s]
        vols = _roi_volumes(rng, volume_shape)
        volumes[s] = vols
        zooms = (_VOXEL_MM,) * 3
        _write_nifti(layout.brainmask(s), vols["brainmask"], zooms)
        layout.roi(s, "streams").parent.mkdir(parents=True, exist_ok=True)
        for atlas in ("streams", "nsdgeneral"):
            _write_nifti(layout.roi(s, atlas), vols[atlas], zooms)
        _write_responses(layout, s, tr, rng)
        if n_native_vertices:
            _write_transforms(layout, s, vols["streams"] >= 0, n_native_vertices, rng)

        brain = vols["brainmask"].astype(bool)
        W = {}
        for roi in ("early", "ventral"):
            roi_mask = vols["streams"] == STREAMS_LABELS[roi]
            n_feat = features[roi].shape[1]
            W[roi] = rng.standard_normal((n_feat, int(roi_mask.sum()))) * (
                signal_std / np.sqrt(n_feat)
            )
        weights[s] = W
        bad_session = 2 if sessions_of[s] >= 2 else 1
        brain_ijk = np.argwhere(brain)
        early_ijk = np.argwhere(vols["streams"] == STREAMS_LABELS["early"])
        bad = np.concatenate([early_ijk[:1], brain_ijk[rng.choice(len(brain_ijk), 2)]])
        bad_voxels[s] = (bad_session, bad)

        fs_map = None
        if "fsaverage" in formats and n_fsaverage_vertices:
            # Each vertex samples one voxel of the cortex (a stand-in for the real
            # volume -> surface -> fsaverage mapping).
            cortex_ijk = np.argwhere(vols["streams"] >= 0)
            fs_map = cortex_ijk[rng.integers(len(cortex_ijk), size=2 * n_fsaverage_vertices)]
            fs_labels = vols["streams"][tuple(fs_map.T)]
            fs_general = vols["nsdgeneral"][tuple(fs_map.T)]
            label_dir = layout.fsaverage_roi("streams", "lh").parent
            label_dir.mkdir(parents=True, exist_ok=True)
            for h, hemi in enumerate(("lh", "rh")):
                sl = slice(h * n_fsaverage_vertices, (h + 1) * n_fsaverage_vertices)
                for atlas, values in (("streams", fs_labels), ("nsdgeneral", fs_general)):
                    _write_mgh(
                        layout.fsaverage_roi(atlas, hemi),
                        values[sl].reshape(-1, 1, 1).astype(np.float32),
                    )
        subject_betas = (
            np.empty((len(tr), *volume_shape), dtype=np.float32) if keep_betas else None
        )
        subject_fs = (
            np.empty((len(tr), 2 * n_fsaverage_vertices), dtype=np.float32)
            if keep_betas and fs_map is not None
            else None
        )
        feature_rows = np.searchsorted(used, tr.nsd_ids)
        for session in range(1, sessions_of[s] + 1):
            rows = np.flatnonzero(tr.sessions == session)
            psc = np.zeros((T, *volume_shape), dtype=np.float32)
            psc[:, brain] = rng.normal(0, noise_std, (T, int(brain.sum())))
            for roi in ("early", "ventral"):
                roi_mask = vols["streams"] == STREAMS_LABELS[roi]
                psc[:, roi_mask] += features[roi][feature_rows[rows]] @ W[roi]
            if session == bad_session:
                psc[:, bad[:, 0], bad[:, 1], bad[:, 2]] = 0
            stored = np.clip(np.rint(psc * BETA_SCALE), -32768, 32767).astype(np.int16)
            if subject_betas is not None:
                subject_betas[rows] = stored / np.float32(BETA_SCALE)
            if "hdf5" in formats:
                path = layout.betas(s, session, "hdf5")
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
                    # NSD's chunking: one voxel's 750 trials per chunk.
                    f.create_dataset(
                        "betas", data=stored.transpose(0, 3, 2, 1), chunks=(T, 1, 1, 1)
                    )
            if "nifti" in formats:
                path = layout.betas(s, session, "nifti")
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_nifti(path, np.moveaxis(stored, 0, -1), (*[_VOXEL_MM] * 3, 1.333))
            if fs_map is not None:
                fs = (stored[:, fs_map[:, 0], fs_map[:, 1], fs_map[:, 2]] / BETA_SCALE).astype(
                    np.float32
                )
                if session == bad_session:
                    fs[:, :2] = np.nan
                if subject_fs is not None:
                    subject_fs[rows] = fs
                for h, hemi in enumerate(("lh", "rh")):
                    path = layout.betas(s, session, "fsaverage", hemi)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    part = fs[:, h * n_fsaverage_vertices : (h + 1) * n_fsaverage_vertices]
                    _write_mgh(path, part.T.reshape(-1, 1, 1, T))
        if subject_betas is not None:
            all_betas[s] = subject_betas
        if subject_fs is not None:
            all_fs[s] = subject_fs
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
        weights=weights,
        captions=captions,
        volumes=volumes,
        betas=all_betas if keep_betas else None,
        fsaverage_betas=all_fs if keep_betas and all_fs else None,
        bad_voxels=bad_voxels,
        n_trials_per_session=T,
    )


def _write_transforms(
    layout: NSDLayout, subject: int, cortex: np.ndarray, n_native: int, rng: np.random.Generator
) -> None:
    """NSD's transforms: native vertices at cortex voxels (1-based coordinates, 3 depths)."""
    voxels = np.argwhere(cortex)
    path = layout.transform(subject, "lh.white-to-fsaverage")
    path.parent.mkdir(parents=True, exist_ok=True)
    for hemi in ("lh", "rh"):
        centres = voxels[rng.integers(len(voxels), size=n_native)].astype(np.float32)
        for depth in range(3):
            coords = centres + 1 + rng.uniform(-0.3, 0.3, centres.shape).astype(np.float32)
            _write_mgh(layout.transform(subject, f"{hemi}.func1pt8-to-layerB{depth + 1}"),
                       coords.reshape(-1, 1, 1, 3))  # fmt: skip
        nearest = rng.integers(1, n_native + 1, size=10242).astype(np.float32)  # 1-based
        _write_mgh(layout.transform(subject, f"{hemi}.white-to-fsaverage"),
                   nearest.reshape(-1, 1, 1))  # fmt: skip


def _write_responses(
    layout: NSDLayout, subject: int, trials: Trials, rng: np.random.Generator
) -> None:
    """``responses.tsv``: 19 columns, 1-based ids, one row per trial."""
    import pandas as pd

    from brainldm._utils import atomic_path

    n = len(trials)
    run = np.empty(n, dtype=int)
    trial_in_run = np.empty(n, dtype=int)
    for session in np.unique(trials.sessions):
        rows = np.flatnonzero(trials.sessions == session)
        run[rows], trial_in_run[rows] = _runs(len(rows))
    seen: set[int] = set()
    is_old = np.empty(n, dtype=int)
    for k, nsd_id in enumerate(trials.nsd_ids):
        is_old[k] = int(nsd_id) in seen
        seen.add(int(nsd_id))
    rt = rng.uniform(400, 1500, n)
    rt[rng.random(n) < 0.02] = np.nan
    frame = pd.DataFrame(
        {
            "SUBJECT": subject,
            "SESSION": trials.sessions,
            "RUN": run,
            "TRIAL": trial_in_run,
            "73KID": trials.nsd_ids + 1,
            "10KID": 0,  # filled below
            "TIME": np.round(np.arange(n) * 4.0 / 86400 + 737000, 6),
            "ISOLD": is_old,
            "ISCORRECT": (rng.random(n) < 0.8).astype(int),
            "RT": np.round(rt, 1),
            "CHANGEMIND": np.where(rng.random(n) < 0.05, 1.0, np.nan),
            "MEMORYRECENT": np.nan,
            "MEMORYFIRST": np.nan,
            "ISOLDCURRENT": is_old,
            "ISCORRECTCURRENT": (rng.random(n) < 0.8).astype(int),
            "TOTAL1": 0,
            "TOTAL2": 0,
            "BUTTON": rng.integers(1, 3, n),
            "MISSINGDATA": 0,
        },
        columns=list(_RESPONSES_COLUMNS),
    )
    # 10KID: the 1-based position of the image in the subject's list (subjectim column).
    from scipy.io import loadmat

    subjectim = loadmat(layout.expdesign(), variable_names=["subjectim"])["subjectim"]
    position = {int(v) - 1: k + 1 for k, v in enumerate(subjectim[subject - 1])}
    frame["10KID"] = [position[int(i)] for i in trials.nsd_ids]
    path = layout.responses(subject)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
