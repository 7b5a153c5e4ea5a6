"""The embedded demo: a synthetic NSD whose voxels respond to a tiny LDM's own z and c."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

#: The synthetic data of the demo (small enough for 2 CPU cores in a few minutes).
DEMO_DATA = dict(
    n_sessions=3,
    n_trials_per_session=30,
    n_shared=12,
    volume_shape=(14, 16, 12),
    image_size=96,
    n_native_vertices=600,
    n_fsaverage_vertices=None,
    formats=("hdf5",),
    noise_std=0.5,
    signal_std=1.0,
)


def write_demo_nsd(root: str | os.PathLike, ldm, subjects=(1, 2), random_state: int = 0):
    """Write the demo's synthetic NSD: early voxels respond to z, ventral ones to c of ``ldm``.

    Returns
    -------
    fake : brainldm.testing.FakeNSD
    """
    from brainldm.features import encode_image_latents, encode_text_embeddings
    from brainldm.testing import write_fake_nsd

    def z_features(images, captions):
        return encode_image_latents(ldm, images, batch_size=16).reshape(len(images), -1)

    def c_features(images, captions):
        return encode_text_embeddings(ldm, captions).reshape(len(captions), -1)

    return write_fake_nsd(
        root, subjects=subjects, early_features=z_features, ventral_features=c_features,
        random_state=random_state, **DEMO_DATA,
    )  # fmt: skip


def run_demo(
    out_dir: str | os.PathLike = "brainldm_demo",
    subjects=(1, 2),
    progress: bool = False,
    force=(),
) -> dict:
    """Run every stage on the embedded synthetic default; weights are random.

    Parameters
    ----------
    out_dir : path-like
        Gets ``nsd/`` (the synthetic NSD), ``model/`` (the tiny LDM) and the stages.
    subjects : sequence of int
    progress : bool
    force : sequence of str
        Stages to redo.

    Returns
    -------
    summary : dict
        As :func:`run_pipeline`.
    """
    from brainldm.config import make_run_config
    from brainldm.ldm import load_ldm, make_tiny_ldm, save_ldm
    from brainldm.nsd import NSDLayout
    from brainldm.pipeline._run import run_pipeline

    out_dir = Path(out_dir).resolve()  # absolute: the stage hashes include these paths
    model_dir = out_dir / "model"
    if not (model_dir / "unet" / "config.json").exists():
        save_ldm(make_tiny_ldm(seed=0), model_dir)
    ldm = load_ldm(model_dir)
    nsd_root = out_dir / "nsd"
    if not (nsd_root / "nsddata" / "experiments" / "nsd" / "nsd_stim_info_merged.csv").exists():
        write_demo_nsd(nsd_root, ldm, subjects)
    config = make_run_config(
        "demo",
        {"data": {"nsd_root": str(nsd_root), "subjects": tuple(subjects)},
         "features": {"model": str(model_dir)}},  # fmt: skip
    )
    summary = run_pipeline(config, out_dir, layout=NSDLayout(nsd_root), ldm=ldm, demo=True,
                           force=force, progress=progress)  # fmt: skip
    logger.info("demo finished in %s", out_dir)
    return summary

