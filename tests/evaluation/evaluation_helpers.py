"""Builders shared by the evaluation tests."""

import numpy as np
import pandas as pd
from PIL import Image

from brainldm.evaluation import INDEX_COLUMNS

#: A tiny CLIP vision tower with ViT-L/14's patch size and input size (257 tokens).
TINY_CLIP = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=12,
    num_attention_heads=4,
    projection_dim=16,
)


def random_images(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_recon_folder(root, images_by_condition, seed=0):
    """A folder as brainldm.reconstruction.reconstruct writes it: PNGs + index.csv.

    ``images_by_condition``: {condition: {nsd_id: uint8 array (n_samples, H, W, 3)}}.
    """
    rows = []
    for condition, per_id in images_by_condition.items():
        for nsd_id, samples in per_id.items():
            for k, image in enumerate(samples):
                rel = f"{condition}/{nsd_id:06d}_{k:02d}.png"
                (root / condition).mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / rel)
                rows.append(
                    dict(nsd_id=nsd_id, condition=condition, sample=k, seed=seed + k, path=rel)
                )
    pd.DataFrame(rows, columns=list(INDEX_COLUMNS)).to_csv(root / "index.csv", index=False)
    return root
