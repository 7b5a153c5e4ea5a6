"""Decoded (z, c) → images: the paper's z+c, and the z-only and c-only controls.

The recipe (Takagi & Nishimoto 2023, §3.4; seed_code.md §5), for each test image:

1. z (4 × 40 × 40, decoded from early visual cortex) → VAE decode → 320-px image
   (8 × the latent side: 448 px for a 4 × 56 × 56 z) → uint8 (truncated, as the
   authors) → resize to 512 px.
2. Re-encode it with the VAE → init latent (4 × 64 × 64): one posterior draw per
   test image, shared by its samples (``init_posterior="shared_sample"``).
3. Noise it to strength 0.8 (t = 801 with the CompVis convention).
4. DDIM, 50-step schedule, the last 40 steps, η = 0, guidance 5.0 with c (decoded
   from ventral cortex) against the empty prompt.
5. VAE decode → the **z+c** image.

The controls "omit c or z from step (iii)" (§3.4):

- **z only** (``z_only="denoise_without_c"``, the preset): steps 1-5 with the
  empty prompt in place of c. With "" on both guidance branches the guided noise
  estimate is the unconditional one whatever the scale, so the U-Net runs once
  per step, unguided. ``z_only="vae_decode"`` reads it as the image of step 1.
- **c only**: text-to-image from pure noise with c (all 50 steps), guidance 7.5,
  the default of the LDM text-to-image script the paper says it kept.

Each sample's seed is derived from (base seed, nsd_id, sample index), so the
images do not depend on batch size, order or how a run is split into shards.
(The authors reseed 42 before each test image instead, so all images share one
noise sequence; the statistics are those of independent draws either way.)

The reconstruction folder is written by :func:`reconstruct` and
:func:`write_originals`; this module is the one place that knows its format::

    folder/
        index.csv                       nsd_id, condition, sample, seed, path
        settings.json                   reconstruction config, model fingerprint
        {condition}/{nsd_id:06d}_{sample:02d}.png    (png_path)
        originals/{nsd_id:06d}.png      the stimuli (original_path), for human rating
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainldm.config import ReconstructionConfig
from brainldm.ldm import (
    ddim_denoise,
    decode_latents,
    encode_prompt_embeddings,
    from_uint8,
    img2img_timesteps,
    make_generators,
    randn,
    resize_uint8,
    to_uint8,
)

logger = logging.getLogger(__name__)

CONDITIONS = ("zc", "z", "c")
INDEX_COLUMNS = ("nsd_id", "condition", "sample", "seed", "path")
#: File of a reconstruction folder that lists its images (columns ``INDEX_COLUMNS``).
INDEX_FILE = "index.csv"
#: Folder of the original stimuli inside a reconstruction folder.
ORIGINALS_DIR = "originals"
#: Folder of the human ratings of a reconstruction folder (``brainldm rate``), and the
#: summary file the rating results are written to inside it.
RATING_DIR = "rating"
RATING_RESULTS_FILE = "rating_results.json"


def png_path(condition: str, nsd_id: int, sample: int) -> str:
    """Return where one reconstruction lies, relative to its reconstruction folder.

    Parameters
    ----------
    condition : {"zc", "z", "c"}
    nsd_id : int
        0-based NSD id of the test image.
    sample : int
        Sample index (0 for the single z-only image).

    Returns
    -------
    path : str
        ``{condition}/{nsd_id:06d}_{sample:02d}.png``, the ``path`` column of
        ``index.csv``.
    """
    return f"{condition}/{int(nsd_id):06d}_{int(sample):02d}.png"


def original_path(folder: str | os.PathLike, nsd_id: int) -> Path:
    """Return where the original stimulus of ``nsd_id`` lies in a reconstruction folder.

    Parameters
    ----------
    folder : path-like
        The reconstruction folder.
    nsd_id : int
        0-based NSD id.

    Returns
    -------
    path : Path
        ``folder/originals/{nsd_id:06d}.png``.
    """
    return Path(folder) / ORIGINALS_DIR / f"{int(nsd_id):06d}.png"


def write_originals(
    folder: str | os.PathLike, nsd_ids: Sequence[int], images: np.ndarray
) -> list[Path]:
    """Write the original stimuli beside the reconstructions, at :func:`original_path`.

    Each file is written through a temporary file and renamed, so a crash never
    leaves a half-written PNG. Existing files are overwritten.

    Parameters
    ----------
    folder : path-like
        The reconstruction folder.
    nsd_ids : sequence of int
        0-based NSD ids, one per image, each in [0, 999999] and given once.
    images : ndarray of uint8, shape (n_images, height, width, 3)
        The stimuli as RGB.

    Returns
    -------
    paths : list of Path
        The files written, in the order of ``nsd_ids``.

    Raises
    ------
    TypeError
        If ``images`` is not uint8.
    ValueError
        If ``images`` has the wrong shape, or ``nsd_ids`` does not match it, is
        out of range or repeats an id.
    """
    ids = [int(i) for i in nsd_ids]
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must have dtype uint8, got {images.dtype}.")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must have shape (n_images, height, width, 3), got {images.shape}."
        )
    if len(ids) != len(images):
        raise ValueError(
            f"nsd_ids has {len(ids)} ids but images has {len(images)} images; "
            "give one id per image."
        )
    bad = [i for i in ids if not 0 <= i <= 999_999]
    if bad:
        raise ValueError(f"nsd_ids must be 0-based ids in [0, 999999], got {bad[:5]}.")
    if len(set(ids)) != len(ids):
        raise ValueError("nsd_ids contains duplicates; give each image once.")
    paths = []
    for nsd_id, image in zip(ids, images, strict=True):
        path = original_path(folder, nsd_id)
        _write_png(path, image)
        paths.append(path)
    return paths


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    from brainldm._utils import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def sample_seed(base_seed: int, nsd_id: int, sample: int) -> int:
    """Seed of one generated image, from (base seed, nsd_id, sample index).

    Returns
    -------
    seed : int in [0, 2**32)
    """
    state = np.random.SeedSequence([int(base_seed), int(nsd_id), int(sample)])
    return int(state.generate_state(1, dtype=np.uint32)[0])


def img2img(ldm, init_latents, text_embeddings, seeds: Sequence[int], config=None, uncond=None):
    """Noise the init latents and denoise them with c (DDIM, guidance): steps 3-5.

    Parameters
    ----------
    ldm : LatentDiffusion
    init_latents : torch.Tensor of shape (n, 4, 64, 64)
        x_0, one per sample.
    text_embeddings : torch.Tensor of shape (n, 77, d)
        c, one per sample.
    seeds : sequence of int
        One per sample; the forward noise is drawn from ``torch.Generator(seed)``
        as diffusers does, so with ``timesteps="diffusers"`` the result equals
        ``StableDiffusionImg2ImgPipeline`` given the same latents and generator.
    config : ReconstructionConfig, optional
    uncond : torch.Tensor of shape (1, 77, d), optional
        Embedding of "" (computed if not given).

    Returns
    -------
    latents : torch.Tensor of shape (n, 4, 64, 64)
        Denoised latents (decode them with ``decode_latents``).
    """
    import torch

    config = ReconstructionConfig() if config is None else config
    scheduler = ldm.make_scheduler()
    noise_t, steps = img2img_timesteps(
        scheduler, config.num_inference_steps, config.strength, config.timesteps
    )
    noise = randn(tuple(init_latents.shape), make_generators(seeds), ldm.device, ldm.dtype)
    latents = scheduler.add_noise(init_latents, noise, torch.tensor([noise_t]))
    return ddim_denoise(
        ldm, latents, text_embeddings, steps, scheduler, config.guidance_scale, uncond
    )


def txt2img(ldm, text_embeddings, seeds: Sequence[int], config=None, uncond=None):
    """Denoise pure noise with c, the whole DDIM trajectory: the c-only control.

    Guidance is ``config.c_only_guidance_scale`` (7.5, txt2img's default).

    Returns
    -------
    latents : torch.Tensor of shape (n, 4, size / 8, size / 8)
    """
    config = ReconstructionConfig() if config is None else config
    scheduler = ldm.make_scheduler()
    scheduler.set_timesteps(config.num_inference_steps)
    side = config.image_size // ldm.vae_scale
    shape = (len(seeds), ldm.unet.config.in_channels, side, side)
    latents = randn(shape, make_generators(seeds), ldm.device, ldm.dtype)
    latents = latents * scheduler.init_noise_sigma
    steps = [int(t) for t in scheduler.timesteps]
    return ddim_denoise(
        ldm, latents, text_embeddings, steps, scheduler, config.c_only_guidance_scale, uncond
    )


def check_reconstruction_inputs(
    image_latents: np.ndarray | None,
    text_embeddings: np.ndarray | None,
    nsd_ids: Sequence[int],
    conditions: Sequence[str],
) -> None:
    """Check decoded latents and ids before any image is generated.

    Parameters
    ----------
    image_latents : ndarray of shape (n_images, ...) or None
        Needed (one row per id) for "zc" and "z".
    text_embeddings : ndarray of shape (n_images, ...) or None
        Needed (one row per id) for "zc" and "c".
    nsd_ids : sequence of int
        Unique ids, one per row.
    conditions : sequence of {"zc", "z", "c"}

    Raises
    ------
    ValueError
        If a condition is unknown, an id repeats, or a needed array is missing or
        has another number of rows.
    """
    from brainldm._utils import check_choices

    check_choices("conditions", conditions, CONDITIONS)
    n = len(nsd_ids)
    if len(set(int(i) for i in nsd_ids)) != n:
        raise ValueError("nsd_ids must be unique: one row of decoded latents per image.")
    if ("zc" in conditions or "z" in conditions) and (
        image_latents is None or len(image_latents) != n
    ):
        raise ValueError(
            f"image_latents must have one row per nsd_id ({n}) for conditions "
            f"{[c for c in conditions if c in ('zc', 'z')]}, got "
            f"{None if image_latents is None else len(image_latents)}."
        )
    if ("zc" in conditions or "c" in conditions) and (
        text_embeddings is None or len(text_embeddings) != n
    ):
        raise ValueError(
            f"text_embeddings must have one row per nsd_id ({n}) for conditions "
            f"{[c for c in conditions if c in ('zc', 'c')]}, got "
            f"{None if text_embeddings is None else len(text_embeddings)}."
        )


def samples_per_image(condition: str, config: ReconstructionConfig) -> int:
    """Images generated per test image for one condition.

    Returns
    -------
    n : int
        ``config.n_samples``; 1 for the deterministic ``z_only="vae_decode"``
        image (scoring it once equals scoring ``n_samples`` identical copies).
    """
    return 1 if condition == "z" and config.z_only == "vae_decode" else config.n_samples


def posterior_seed(config: ReconstructionConfig, nsd_id: int, sample: int) -> int:
    """Seed of the init latent's VAE posterior draw of one sample (step 2).

    With ``init_posterior="shared_sample"`` every sample of an image gets the
    draw of its sample 0, as the authors' code draws once per image.
    """
    shared = config.init_posterior == "shared_sample"
    return sample_seed(config.seed, nsd_id, 0 if shared else sample) + 1


def _images_for(ldm, condition, z_rows, c_rows, seeds, post_seeds, config, uncond):
    """uint8 images (n, size, size, 3) of one condition for one network batch."""
    import dataclasses

    import torch

    def uint8(x):
        return to_uint8(x, config.uint8)

    if condition in ("zc", "z"):
        # Step 1: decode z, quantise, resize.
        z = torch.from_numpy(np.ascontiguousarray(z_rows, np.float32)).to(ldm.device, ldm.dtype)
        z_images = resize_uint8(uint8(decode_latents(ldm, z)), config.image_size, "bicubic")
        if condition == "z" and config.z_only == "vae_decode":
            return z_images
    if condition == "z":  # c omitted: "" on both branches is one unguided pass
        c = uncond.expand(len(seeds), -1, -1)
        config = dataclasses.replace(config, guidance_scale=1.0)
    else:
        c = torch.from_numpy(np.ascontiguousarray(c_rows, np.float32)).to(ldm.device, ldm.dtype)
    if condition == "c":
        return uint8(decode_latents(ldm, txt2img(ldm, c, seeds, config, uncond)))
    # Step 2: re-encode; the posterior draw has its own generator.
    x = from_uint8(z_images, ldm.device, ldm.dtype)
    with torch.inference_mode():
        dist = ldm.vae.encode(x * 2 - 1).latent_dist
    init = dist.mean
    if config.init_posterior != "mean":
        gens = make_generators(post_seeds)
        init = init + dist.std * randn(tuple(init.shape), gens, ldm.device, ldm.dtype)
    latents = img2img(ldm, init * ldm.scaling_factor, c, seeds, config, uncond)
    return uint8(decode_latents(ldm, latents))


def generate(
    ldm,
    image_latents: np.ndarray | None,
    text_embeddings: np.ndarray | None,
    nsd_ids: Sequence[int],
    condition: str,
    config: ReconstructionConfig | None = None,
    batch_size: int = 4,
    batch_invariant: bool = True,
    progress: bool = False,
    skip: set | None = None,
):
    """Generate the images of one condition, batch by batch (a generator).

    Parameters
    ----------
    ldm : LatentDiffusion
    image_latents : ndarray of shape (n_images, 4, h, w), or None for "c"
        Decoded z: 4 × 40 × 40 for the paper's 320 px (``features.z_size``), any
        h × w decodes to an 8h × 8w image that is resized to ``image_size``.
    text_embeddings : ndarray of shape (n_images, 77, d), or None for "z"
        Decoded c.
    nsd_ids : sequence of int
        Image ids, one per row.
    condition : {"zc", "z", "c"}
    config : ReconstructionConfig
    batch_size : int
        Samples handled per step of the loop (and per network call when
        ``batch_invariant`` is False).
    batch_invariant : bool
        If True (default), the networks see one sample per call, so every image is
        bit-identical whatever the batch size, order or sharding (CPU and GPU
        kernels pick algorithms by batch shape, which changes the last bits and,
        rarely, a pixel's rounding). False batches the networks: faster on GPUs,
        images equal only to within ±1 grey level across batch sizes.
    progress : bool
    skip : set of (nsd_id, sample), optional
        Samples not to generate (already on disk).

    Yields
    ------
    items : list of (nsd_id, sample, seed, image)
        ``image`` is uint8 (image_size, image_size, 3).
    """
    from tqdm.auto import tqdm

    config = ReconstructionConfig() if config is None else config
    check_reconstruction_inputs(image_latents, text_embeddings, nsd_ids, (condition,))
    skip = skip or set()
    n_samples = samples_per_image(condition, config)
    jobs = [
        (row, int(nsd_id), k, sample_seed(config.seed, nsd_id, k),
         posterior_seed(config, nsd_id, k))
        for row, nsd_id in enumerate(nsd_ids)
        for k in range(n_samples)
        if (int(nsd_id), k) not in skip
    ]  # fmt: skip
    deterministic = condition == "z" and config.z_only == "vae_decode"
    uncond = None if deterministic else encode_prompt_embeddings(ldm, [""])
    chunk = 1 if batch_invariant else batch_size
    for start in tqdm(range(0, len(jobs), batch_size), disable=not progress, desc=condition):
        batch = jobs[start : start + batch_size]
        images = []
        for c0 in range(0, len(batch), chunk):
            part = batch[c0 : c0 + chunk]
            rows = [j[0] for j in part]
            images.append(
                _images_for(
                    ldm,
                    condition,
                    None if image_latents is None else np.asarray(image_latents)[rows],
                    None if text_embeddings is None else np.asarray(text_embeddings)[rows],
                    [j[3] for j in part],
                    [j[4] for j in part],
                    config,
                    uncond,
                )
            )
        images = np.concatenate(images)
        yield [(j[1], j[2], j[3], im) for j, im in zip(batch, images, strict=True)]


def reconstruct(
    ldm,
    image_latents: np.ndarray | None,
    text_embeddings: np.ndarray | None,
    nsd_ids: Sequence[int],
    out_dir: str | os.PathLike,
    conditions: Sequence[str] = CONDITIONS,
    config: ReconstructionConfig | None = None,
    batch_size: int = 4,
    batch_invariant: bool = True,
    progress: bool = False,
):
    """Write the reconstructions of every condition as PNGs plus an index; resumable.

    Parameters
    ----------
    ldm : LatentDiffusion
    image_latents : ndarray of shape (n_images, 4, h, w), or None without "zc"/"z"
    text_embeddings : ndarray of shape (n_images, 77, d), or None without "zc"/"c"
    nsd_ids : sequence of int
        0-based ids of the test images, one per row.
    out_dir : path-like
        Gets ``{condition}/{nsd_id:06d}_{sample:02d}.png`` (:func:`png_path`),
        ``index.csv`` and ``settings.json``. Images already there are kept, not
        recomputed; the settings must match those of the images already there.
    conditions : sequence of {"zc", "z", "c"}
    config : ReconstructionConfig
    batch_size, batch_invariant
        See :func:`generate`.
    progress : bool

    Returns
    -------
    index : pandas.DataFrame
        Columns ``nsd_id, condition, sample, seed, path`` (path relative to ``out_dir``),
        for every image of these ``nsd_ids`` and conditions.
    """
    import dataclasses

    import pandas as pd

    from brainldm import __version__
    from brainldm._utils import atomic_path, write_json_atomic

    config = ReconstructionConfig() if config is None else config
    conditions = tuple(conditions)
    check_reconstruction_inputs(image_latents, text_embeddings, nsd_ids, conditions)
    out_dir = Path(out_dir)
    settings = {
        "config": dataclasses.asdict(config),
        "model": ldm.fingerprint,
        "model_source": ldm.source,
    }
    settings_path = out_dir / "settings.json"
    if settings_path.exists():
        stored = json.loads(settings_path.read_text())
        if {k: stored.get(k) for k in ("config", "model")} != {
            k: settings[k] for k in ("config", "model")
        }:
            raise ValueError(
                f"{str(out_dir)!r} holds reconstructions made with other settings "
                f"({stored.get('config')}, model {stored.get('model')}); use another out_dir."
            )
    else:
        write_json_atomic(settings_path, {**settings, "package_version": __version__})

    index_path = out_dir / INDEX_FILE
    previous = pd.read_csv(index_path) if index_path.exists() else None
    rows = [] if previous is None else previous.to_dict("records")
    known = {(r["condition"], int(r["nsd_id"]), int(r["sample"])) for r in rows}

    def write_index() -> None:
        frame = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
        frame = frame.sort_values(["condition", "nsd_id", "sample"], kind="stable")
        with atomic_path(index_path) as tmp:
            frame.to_csv(tmp, index=False)

    for condition in conditions:
        n_samples = samples_per_image(condition, config)
        done = {
            (int(i), k)
            for i in nsd_ids
            for k in range(n_samples)
            if (out_dir / png_path(condition, int(i), k)).exists()
        }
        for items in generate(
            ldm, image_latents, text_embeddings, nsd_ids, condition, config, batch_size,
            batch_invariant, progress, skip=done,
        ):  # fmt: skip
            for nsd_id, sample, seed, image in items:
                rel = png_path(condition, nsd_id, sample)
                _write_png(out_dir / rel, image)
                if (condition, nsd_id, sample) not in known:
                    rows.append(dict(nsd_id=nsd_id, condition=condition, sample=sample,
                                     seed=seed, path=rel))  # fmt: skip
                    known.add((condition, nsd_id, sample))
            write_index()
        for nsd_id, sample in done:  # images from an earlier run missing from the index
            if (condition, nsd_id, sample) not in known:
                rows.append(dict(nsd_id=nsd_id, condition=condition, sample=sample,
                                 seed=sample_seed(config.seed, nsd_id, sample),
                                 path=png_path(condition, nsd_id, sample)))  # fmt: skip
                known.add((condition, nsd_id, sample))
    write_index()
    index = pd.read_csv(index_path)
    wanted = index["nsd_id"].isin([int(i) for i in nsd_ids]) & index["condition"].isin(conditions)
    logger.info("reconstructions of %d images in %s", len(nsd_ids), out_dir)
    return index[wanted].reset_index(drop=True)
