"""The embedded demo: a synthetic NSD whose voxels respond to a tiny LDM's own z and c.

The tiny LDM is trained once on synthetic stimuli (``scripts/train_demo_ldm.py``,
:func:`brainldm.testing.train_demo_ldm`) and ships with the package; the demo
loads it and fits nothing at run time.
"""

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
    volume_shape=(22, 27, 21),  # 7.3 mm voxels: 4,377 brain voxels, 3,655 of them cortex
    cortex="fsaverage5",  # real cortex, so that the maps show the planted regions
    image_size=96,
    n_native_vertices=None,  # fsaverage5's own
    n_fsaverage_vertices=None,
    formats=("hdf5",),
    noise_std=0.5,
    signal_std=1.0,
)


#: How :func:`write_demo_nsd` fits an LDM to the demo's stimuli with ``fit=True``
#: (:func:`brainldm.testing.fit_tiny_ldm`, about a minute on 2 CPU cores); the demo
#: itself uses the shipped, trained model instead.
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
    root: str | os.PathLike, ldm, subjects=(1, 2), random_state: int = 0, fit: bool = False
):
    """Write the demo's synthetic NSD: early voxels respond to z, ventral ones to c of ``ldm``.

    Parameters
    ----------
    root : path-like
    ldm : LatentDiffusion
        The tiny LDM: the shipped one (:func:`brainldm.testing.load_demo_ldm`), or
        a random one with ``fit``.
    subjects : sequence of int
    random_state : int
    fit : bool
        Fit ``ldm`` in place to the stimuli first (:data:`DEMO_FIT`): a random LDM
        makes noise of any z and c.

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
    """Run every stage on the embedded synthetic NSD with the shipped tiny LDM.

    Parameters
    ----------
    out_dir : path-like
        Gets ``nsd/`` (the synthetic NSD), ``model/`` (a copy of the tiny LDM's
        weights, :data:`brainldm.testing.DEMO_LDM_DIR`) and the stages.
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
    from brainldm.ldm import load_ldm
    from brainldm.nsd import NSDLayout
    from brainldm.pipeline._run import STAGES, run_pipeline
    from brainldm.testing import DEMO_LDM_DIR, load_demo_ldm

    out_dir = Path(out_dir).resolve()  # absolute: features.model is a setting of features
    model_dir, nsd_root = out_dir / "model", out_dir / "nsd"
    if not model_dir.exists():  # written last, by a rename: the data are complete
        shutil.rmtree(nsd_root, ignore_errors=True)
        write_demo_nsd(nsd_root, load_demo_ldm(), subjects)
        tmp = out_dir / ".tmp-model"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(DEMO_LDM_DIR, tmp)  # the run keeps the weights it used
        os.replace(tmp, model_dir)
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
