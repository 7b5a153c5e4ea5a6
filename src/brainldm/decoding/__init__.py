"""Brain activity → the LDM's latents: the paper's decoders (§3.2).

:func:`fit_decoders` fits one ridge model per target from a subject's
:class:`~brainldm.nsd.SubjectSplit` and feature stores (early visual cortex →
z, ventral cortex → c); :meth:`LatentDecoders.decode` predicts the test images
as :class:`DecodedLatents`, which :mod:`brainldm.reconstruction` turns into
images. ``brainldm decode`` is the command line.

Examples
--------
>>> from brainldm.decoding import fit_decoders          # doctest: +SKIP
>>> decoders = fit_decoders(split, {"image_latents": z_store, "text_embeddings": c_store})
>>> decoded = decoders.decode(split, {"image_latents": z_store})
>>> decoded.save("subj01_decoded.npz")
"""

from brainldm.decoding._decoders import (
    PAPER_ROIS,
    LatentDecoders,
    fit_decoders,
    make_latent_decoder,
    per_image_correlation,
)
from brainldm.decoding._latents import TARGETS, DecodedLatents
from brainldm.decoding._quality import plot_data_quality

__all__ = [
    "fit_decoders",
    "LatentDecoders",
    "DecodedLatents",
    "make_latent_decoder",
    "per_image_correlation",
    "plot_data_quality",
    "PAPER_ROIS",
    "TARGETS",
]
