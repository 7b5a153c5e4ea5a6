"""Reading reconstructions and resizing images for the pixel metrics.

Reconstructions come from the reconstruction module's folder (``index.csv``)
or from a plain folder of images.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from brainldm._utils import check_option

logger = logging.getLogger(__name__)

#: Conditions and index columns written by :func:`brainldm.reconstruction.reconstruct`
#: (the contract between the two modules; a test checks they agree).
CONDITIONS = ("zc", "z", "c")
INDEX_COLUMNS = ("nsd_id", "condition", "sample", "seed", "path")

#: Side of the images compared by PixCorr and SSIM in MindEye and Brain-Diffuser.
PIXEL_SIZE = 425


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _stack(paths: list[Path], what: str) -> np.ndarray:
    images = []
    for path in paths:
        image = _read_rgb(path)
        if images and image.shape != images[0].shape:
            raise ValueError(
                f"{what}: {path} is {image.shape[1]}×{image.shape[0]} but {paths[0]} is "
                f"{images[0].shape[1]}×{images[0].shape[0]}; every image must have the same size."
            )
        images.append(image)
    return np.stack(images)


def load_reconstructions(folder: str | os.PathLike, condition: str):
    """Read one condition's reconstructions from a folder written by the reconstruction module.

    Parameters
    ----------
    folder : path-like
        Holds ``index.csv`` (columns ``nsd_id, condition, sample, seed, path``;
        ``path`` relative to the folder) and the PNGs.
    condition : {"zc", "z", "c"}

    Returns
    -------
    nsd_ids : ndarray of int64, shape (n_images,)
        0-based NSD ids, ascending.
    images : ndarray of uint8, shape (n_images, n_samples, H, W, 3)
        Samples in the order of their ``sample`` index (0, 1, …).

    Raises
    ------
    FileNotFoundError
        No ``index.csv``, or a PNG it lists is missing.
    ValueError
        The condition is not in the index, images have different numbers of
        samples (or sample indices that are not 0..n_samples-1), or different sizes.
    """
    import pandas as pd

    check_option("condition", condition, CONDITIONS)
    folder = Path(folder)
    index_path = folder / "index.csv"
    if not index_path.is_file():
        raise FileNotFoundError(
            f"{index_path} not found; it is written by brainldm.reconstruction.reconstruct. "
            "For a plain folder of images use load_image_folder."
        )
    index = pd.read_csv(index_path)
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"{index_path} lacks column(s) {missing}; expected {list(INDEX_COLUMNS)}.")
    rows = index[index["condition"] == condition]
    if rows.empty:
        present = sorted(index["condition"].unique().tolist())
        raise ValueError(
            f"{index_path} has no images for condition={condition!r}; it holds: {present}."
        )
    rows = rows.sort_values(["nsd_id", "sample"], kind="stable")
    counts = rows.groupby("nsd_id")["sample"].agg(["count", "min", "max", "nunique"])
    n_samples = int(counts["count"].iloc[0])
    uneven = counts[counts["count"] != n_samples]
    if len(uneven):
        raise ValueError(
            f"condition {condition!r}: every image needs the same number of samples, but nsd_id "
            f"{int(counts.index[0])} has {n_samples} and nsd_id {int(uneven.index[0])} has "
            f"{int(uneven['count'].iloc[0])}. Finish the reconstruction run first."
        )
    bad = counts[
        (counts["min"] != 0) | (counts["max"] != n_samples - 1) | (counts["nunique"] != n_samples)
    ]
    if len(bad):
        raise ValueError(
            f"condition {condition!r}: nsd_id {int(bad.index[0])} has sample indices "
            f"{sorted(rows.loc[rows['nsd_id'] == bad.index[0], 'sample'].tolist())}; "
            f"expected 0..{n_samples - 1}."
        )
    paths = [folder / p for p in rows["path"]]
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(
            f"{len(absent)} image(s) listed in {index_path} are missing, e.g. {absent[0]}."
        )
    images = _stack(paths, f"condition {condition!r}")
    nsd_ids = counts.index.to_numpy(dtype=np.int64)
    logger.info(
        "read %d × %d %r reconstructions from %s", len(nsd_ids), n_samples, condition, folder
    )
    return nsd_ids, images.reshape(len(nsd_ids), n_samples, *images.shape[1:])


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def load_image_folder(folder: str | os.PathLike, pattern: str = "*.png"):
    """Read every image of a plain folder, in natural file-name order.

    Natural order compares digit runs as numbers, so ``2.png`` comes before
    ``10.png`` (Brain-Diffuser writes ``{i}.png`` without zero padding).

    Parameters
    ----------
    folder : path-like
    pattern : str
        Glob pattern of the files to read.

    Returns
    -------
    names : list of str
        File names, in the row order of ``images``.
    images : ndarray of uint8, shape (n_images, H, W, 3)
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} not found.")
    paths = sorted(
        (p for p in folder.glob(pattern) if p.is_file()), key=lambda p: _natural_key(p.name)
    )
    if not paths:
        raise FileNotFoundError(f"no file matches {pattern!r} in {folder}.")
    return [p.name for p in paths], _stack(paths, str(folder))


def prepare_pixel_images(images, protocol: str, size: int = PIXEL_SIZE) -> np.ndarray:
    """Images at the PixCorr/SSIM resolution, resized as the protocol's reference code does.

    Parameters
    ----------
    images : array of uint8, shape (..., H, W, 3)
    protocol : {"mindeye", "braindiffuser"}
        ``"mindeye"``: float tensors in [0, 1], resized to 256 × 256 then to
        ``size`` (bilinear, no antialiasing, as torchvision 0.16 tensors);
        float32. ``"braindiffuser"``: PIL ``resize((size, size))`` with its
        default bicubic filter (skipped when already that size), then / 255;
        float64.
    size : int
        Side of the output (425).

    Returns
    -------
    images : ndarray of shape (..., size, size, 3)
    """
    check_option("protocol", protocol, ("mindeye", "braindiffuser"))
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim < 4 or arr.shape[-1] != 3:
        raise ValueError(
            f"images must be uint8 of shape (..., H, W, 3); got {arr.dtype} {arr.shape}."
        )
    lead, flat = arr.shape[:-3], arr.reshape(-1, *arr.shape[-3:])
    if protocol == "mindeye":
        import torch
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        x = torch.from_numpy(np.ascontiguousarray(flat)).permute(0, 3, 1, 2).float() / 255.0
        bilinear = InterpolationMode.BILINEAR
        if tuple(x.shape[-2:]) != (256, 256):
            x = TF.resize(x, [256, 256], interpolation=bilinear, antialias=False)
        x = TF.resize(x, [size], interpolation=bilinear, antialias=False)
        out = x.permute(0, 2, 3, 1).numpy()
    else:
        from PIL import Image

        out = np.stack(
            [
                np.asarray(
                    Image.fromarray(im)
                    if im.shape[:2] == (size, size)
                    else Image.fromarray(im).resize((size, size), Image.Resampling.BICUBIC)
                )
                / 255.0
                for im in flat
            ]
        )
    return out.reshape(*lead, *out.shape[1:])
