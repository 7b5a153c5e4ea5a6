"""The fake NSD's images, captions and stimulus table, and the default feature functions.

Images are a coloured shape on a textured background; their captions name the
colour, shape, place and background from a fixed :data:`VOCABULARY`, so
appearance and caption features are known exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from brainldm._utils import atomic_path, write_json_atomic
from brainldm.nsd import NSDLayout, Trials

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


def _draw_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    """Draw an image with a nameable content: a coloured shape on a textured background."""
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


def draw_stimuli(
    n_images: int,
    image_size: int = 64,
    n_captions: tuple[int, int] = (5, 7),
    random_state: int = 0,
) -> tuple[np.ndarray, list[list[str]]]:
    """Draw images and captions from the fake NSD's generator, without writing anything.

    The images and captions are of the kind :func:`brainldm.testing.write_fake_nsd`
    shows (a coloured shape on a textured background, captions naming colour,
    shape, place and background), drawn by the same code from a generator of
    their own: the same ``random_state`` gives the same stimuli, not those of a
    fake NSD written with it.

    Parameters
    ----------
    n_images : int
    image_size : int
        Side of the images in pixels.
    n_captions : (int, int)
        Least and most captions per image (at most the 7 templates).
    random_state : int

    Returns
    -------
    images : ndarray of uint8, shape (n_images, image_size, image_size, 3)
    captions : list of list of str
        ``captions[i]`` are the captions of image i.
    """
    from brainldm._utils import check_positive_int

    check_positive_int("image_size", image_size)
    if not 1 <= n_captions[0] <= n_captions[1] <= len(_TEMPLATES):
        raise ValueError(f"n_captions must be (low, high) with 1 <= low <= high <= "
                         f"{len(_TEMPLATES)}, got {n_captions!r}.")  # fmt: skip
    rng = np.random.default_rng(random_state)
    images = np.empty((n_images, image_size, image_size, 3), dtype=np.uint8)
    captions = []
    for k in range(n_images):
        images[k], content = _draw_image(rng, image_size)
        n_cap = int(rng.integers(n_captions[0], n_captions[1] + 1))
        captions.append(_captions_for(rng, content, n_cap))
    return images, captions


def _standardise(F: np.ndarray) -> np.ndarray:
    F = F - F.mean(axis=0)
    std = F.std(axis=0)
    return F / np.where(std > 0, std, 1)


def _write_stimuli(
    layout: NSDLayout,
    rng: np.random.Generator,
    used: np.ndarray,
    n_stimuli: int,
    image_size: int,
    n_captions: tuple[int, int],
) -> tuple[np.ndarray, dict[int, list[str]], np.ndarray, np.ndarray]:
    """Draw the images shown and their captions; write ``imgBrick`` and the COCO captions.

    Returns
    -------
    images : ndarray of uint8, shape (len(used), image_size, image_size, 3)
        Rows as ``used``.
    captions : dict of int to list of str
        Captions per ``nsd_id``.
    coco_ids, coco_split : ndarray of shape (n_stimuli,)
        COCO id and split of every stimulus (the stimulus table's columns).
    """
    import h5py

    images = np.empty((len(used), image_size, image_size, 3), dtype=np.uint8)
    captions: dict[int, list[str]] = {}
    for k, nsd_id in enumerate(used):
        images[k], content = _draw_image(rng, image_size)
        n_cap = int(rng.integers(n_captions[0], n_captions[1] + 1))
        captions[int(nsd_id)] = _captions_for(rng, content, n_cap)
    path = layout.stimuli()  # only the rows shown are written: HDF5 allocates lazily
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
                    {
                        "id": int(coco_ids[i]),
                        "file_name": f"{int(coco_ids[i]):012d}.jpg",
                        "height": image_size,
                        "width": image_size,
                    }
                    for i in ids
                ],  # fmt: skip
                "annotations": annotations,
            },
        )
    return images, captions, coco_ids, coco_split


def _write_stim_info(
    layout: NSDLayout,
    rng: np.random.Generator,
    coco_ids: np.ndarray,
    coco_split: np.ndarray,
    shared: np.ndarray,
    subjectim: np.ndarray,
    trials: Mapping[int, Trials],
) -> None:
    """Write ``nsd_stim_info_merged.csv``: COCO ids, shared flags, subjects' images and repeats.

    Parameters
    ----------
    layout : NSDLayout
    rng : numpy.random.Generator
    coco_ids, coco_split : ndarray of shape (n_stimuli,)
    shared : ndarray of int
        0-based ids of the shared images.
    subjectim : ndarray of int, shape (n_subject_rows, n_per_subject)
        0-based images of each design subject.
    trials : mapping of int to Trials
        The trials of the subjects written (their repeats are filled in).
    """
    import pandas as pd

    n_stimuli = len(coco_ids)
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
    n_csv_subjects = len(subjectim)
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
