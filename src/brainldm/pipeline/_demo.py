"""The embedded demo: a synthetic NSD whose voxels respond to a tiny LDM's own z and c."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: The synthetic data of the demo (small enough for 2 CPU cores in a few minutes).
DEMO_DATA = dict(
    n_sessions=3,
    n_trials_per_session=45,
    n_shared=20,
    volume_shape=(14, 16, 12),
    image_size=96,
    n_native_vertices=600,
    n_fsaverage_vertices=None,
    formats=("hdf5",),
    noise_std=0.5,
    signal_std=1.0,
)


#: How the demo's tiny LDM is fitted to the synthetic stimuli before the voxels are
#: planted (:func:`brainldm.testing.fit_tiny_ldm`): about a minute on 2 CPU cores.
DEMO_FIT = dict(image_size=64, vae_steps=150, unet_steps=250, batch_size=8, seed=0)


#: Voxels respond to this many principal components of z (early) and of c (ventral):
#: a response to all 6,400 dimensions of z could not be learnt from the demo's few
#: dozen training images.
DEMO_PLANTED_COMPONENTS = 16


def _principal_components(F: np.ndarray, k: int) -> np.ndarray:
    """Scores of the rows of F (n, p) on its first k principal components, (n, k)."""
    F = F - F.mean(axis=0)
    U, S, _ = np.linalg.svd(F, full_matrices=False)
    return U[:, :k] * S[:k]


def write_demo_nsd(
    root: str | os.PathLike, ldm, subjects=(1, 2), random_state: int = 0, fit: bool = True
):
    """Write the demo's synthetic NSD: early voxels respond to z, ventral ones to c of ``ldm``.

    Parameters
    ----------
    root : path-like
    ldm : LatentDiffusion
        The tiny LDM. With ``fit``, it is first fitted in place to the stimuli
        (:data:`DEMO_FIT`): a random one makes noise of any z and c.
    subjects : sequence of int
    random_state : int
    fit : bool

    Returns
    -------
    fake : brainldm.testing.FakeNSD
    """
    from brainldm.features import encode_image_latents, encode_text_embeddings
    from brainldm.testing import fit_tiny_ldm, write_fake_nsd

    to_fit = [fit]

    def z_features(images, captions):
        # write_fake_nsd asks for z first, with every stimulus: fit the LDM to them then
        if to_fit.pop() if to_fit else False:
            logger.info("fitting the tiny LDM to %d synthetic stimuli", len(images))
            losses = fit_tiny_ldm(ldm, images, captions, **DEMO_FIT)
            logger.info("final losses: VAE %.3f, U-Net %.3f", losses["vae"][-1],
                        losses["unet"][-1])  # fmt: skip
        z = encode_image_latents(ldm, images, batch_size=16).reshape(len(images), -1)
        return _principal_components(z, DEMO_PLANTED_COMPONENTS)

    def c_features(images, captions):
        c = encode_text_embeddings(ldm, captions).reshape(len(captions), -1)
        return _principal_components(c, DEMO_PLANTED_COMPONENTS)

    return write_fake_nsd(
        root, subjects=subjects, early_features=z_features, ventral_features=c_features,
        random_state=random_state, **DEMO_DATA,
    )  # fmt: skip


def run_demo(
    out_dir: str | os.PathLike = "brainldm_demo",
    subjects=(1, 2),
    progress: bool = False,
    force=(),
    stages=None,
) -> dict:
    """Run every stage on the embedded synthetic default; weights are random.

    Parameters
    ----------
    out_dir : path-like
        Gets ``nsd/`` (the synthetic NSD), ``model/`` (the tiny LDM) and the stages.
    subjects : sequence of int
    progress : bool
    force : sequence of str
        Finished stages to remove and redo.
    stages : sequence of str, optional
        Stages to run (default: all).

    Returns
    -------
    summary : dict
        As :func:`run_pipeline`.
    """
    from brainldm.config import make_run_config
    from brainldm.ldm import load_ldm, make_tiny_ldm, save_ldm
    from brainldm.nsd import NSDLayout
    from brainldm.pipeline._run import STAGES, run_pipeline

    out_dir = Path(out_dir).resolve()  # absolute: features.model is a setting of features
    model_dir, nsd_root = out_dir / "model", out_dir / "nsd"
    if not model_dir.exists():  # written last, by a rename: the data are complete
        shutil.rmtree(nsd_root, ignore_errors=True)
        ldm = make_tiny_ldm(seed=0)
        write_demo_nsd(nsd_root, ldm, subjects)  # fits the LDM to the stimuli first
        tmp = out_dir / ".tmp-model"
        shutil.rmtree(tmp, ignore_errors=True)
        os.replace(save_ldm(ldm, tmp), model_dir)
    ldm = load_ldm(model_dir)
    config = make_run_config(
        "demo",
        {
            "data": {"nsd_root": str(nsd_root), "subjects": tuple(subjects)},
            "features": {"model": str(model_dir)},
        },  # fmt: skip
    )
    summary = run_pipeline(config, out_dir, layout=NSDLayout(nsd_root), ldm=ldm, demo=True,
                           stages=STAGES if stages is None else stages, force=force,
                           progress=progress)  # fmt: skip
    logger.info("demo finished in %s", out_dir)
    return summary
