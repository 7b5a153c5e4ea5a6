"""Stimulus images (``nsd_stimuli.hdf5``) and their COCO captions."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from brainldm.nsd._layout import NSDLayout

logger = logging.getLogger(__name__)


def _open_stimuli(layout: NSDLayout, path):
    """Open ``nsd_stimuli.hdf5``, or raise a ValueError naming it if it is unreadable."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(
            f"cannot read the stimulus file {str(path)!r} ({' '.join(str(err).split())}); it may "
            f"be truncated or corrupt: download it again from {layout.download_of(path)}."
        ) from None
    if "imgBrick" not in f:
        f.close()
        raise ValueError(f"the stimulus file {str(path)!r} has no 'imgBrick' dataset.")
    return f


def _read_captions(layout: NSDLayout, path) -> dict[int, list[str]]:
    """COCO image id → its captions, from one captions file; a ValueError naming a bad file."""
    grouped: dict[int, list[str]] = defaultdict(list)
    try:
        with open(path, encoding="utf-8") as f:
            annotations = json.load(f)["annotations"]
        for ann in annotations:
            grouped[int(ann["image_id"])].append(ann["caption"].strip())
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"cannot read the COCO captions file {str(path)!r} ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:200]}); it may be truncated or corrupt: download "
            f"it again from {layout.download_of(path)}."
        ) from None
    logger.debug("read %d captions from %s", len(annotations), path)
    return grouped


def check_stimulus_inputs(layout: NSDLayout, nsd_ids: Sequence[int] | np.ndarray) -> None:
    """Check that the images and captions of ``nsd_ids`` can be read, before any work.

    Opens ``nsd_stimuli.hdf5`` (ids in range) and reads the COCO captions files
    the ids need (every id has a caption).

    Raises
    ------
    FileNotFoundError, ValueError, KeyError
        Naming the missing or unreadable file.
    """
    ids = np.asarray(nsd_ids, dtype=np.int64).ravel()
    path = layout.require(layout.stimuli())
    with _open_stimuli(layout, path) as f:
        n_images = f["imgBrick"].shape[0]
    bad = ids[(ids < 0) | (ids >= n_images)]
    if bad.size:
        raise ValueError(
            f"nsd_ids {bad[:5].tolist()} are out of range; {path} holds ids 0..{n_images - 1}."
        )
    load_captions(layout, ids)


def load_stimulus_images(layout: NSDLayout, nsd_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Read images by ``nsd_id``, in the order given (repeats and any order allowed).

    Parameters
    ----------
    layout : NSDLayout
    nsd_ids : sequence of int
        0-based ids (rows of ``imgBrick``).

    Returns
    -------
    images : ndarray of uint8, shape (n_ids, height, width, 3)
        425 × 425 RGB in NSD.
    """
    ids = np.asarray(nsd_ids, dtype=np.int64).ravel()
    path = layout.require(layout.stimuli())
    with _open_stimuli(layout, path) as f:
        brick = f["imgBrick"]
        n_images = brick.shape[0]
        bad = ids[(ids < 0) | (ids >= n_images)]
        if bad.size:
            raise ValueError(
                f"nsd_ids {bad[:5].tolist()} are out of range; {path} holds ids 0..{n_images - 1}."
            )
        if ids.size == 0:
            return np.empty((0, *brick.shape[1:]), dtype=brick.dtype)
        # h5py wants strictly increasing indices: read each id once, sorted, then reorder.
        unique, inverse = np.unique(ids, return_inverse=True)
        return brick[unique][inverse]


def load_captions(
    layout: NSDLayout,
    nsd_ids: Sequence[int] | np.ndarray,
    stim_info: pd.DataFrame | None = None,
) -> list[list[str]]:
    """COCO captions of each image (usually 5, sometimes 6-7), from local JSON files.

    Parameters
    ----------
    layout : NSDLayout
        ``layout.annotations_dir`` holds ``captions_train2017.json`` and
        ``captions_val2017.json``. Nothing is downloaded.
    nsd_ids : sequence of int
        0-based ids.
    stim_info : DataFrame, optional
        Output of :func:`load_stim_info`, to avoid re-reading the CSV.

    Returns
    -------
    captions : list of list of str
        ``captions[i]`` are the captions of ``nsd_ids[i]``, in annotation order.

    Raises
    ------
    KeyError
        If an image has no caption in its COCO file.
    """
    from brainldm.nsd._design import load_stim_info

    ids = np.asarray(nsd_ids, dtype=np.int64).ravel()
    info = load_stim_info(layout) if stim_info is None else stim_info
    missing_rows = np.setdiff1d(ids, info.index.to_numpy())
    if missing_rows.size:
        raise ValueError(f"nsd_ids {missing_rows[:5].tolist()} are not in the stimulus table.")
    rows = info.loc[ids, ["cocoId", "cocoSplit"]]
    by_split: dict[str, dict[int, list[str]]] = {}
    for split in pd.unique(rows["cocoSplit"]):
        path = layout.require(layout.captions(split))
        by_split[split] = _read_captions(layout, path)
    captions = []
    for nsd_id, coco_id, split in zip(ids, rows["cocoId"], rows["cocoSplit"], strict=True):
        found = by_split[split].get(int(coco_id))
        if not found:
            raise KeyError(
                f"no caption for nsd_id {int(nsd_id)} (cocoId {int(coco_id)}) in "
                f"{str(layout.captions(split))!r}; check that the COCO {split} captions "
                "file is complete."
            )
        captions.append(list(found))
    return captions
