"""Stimulus → LDM components: z (image latents), c (text embeddings), zc, U-Net activations."""

from brainldm.features._extract import (
    DEFAULT_UNET_LAYERS,
    ZCFeatures,
    default_unet_layers,
    denoising_record_steps,
    encode_image_latents,
    encode_text_embeddings,
    encode_zc,
    latents_to_init_latents,
)
from brainldm.features._sharded import finalize_features, run_feature_extraction
from brainldm.features._store import (
    FeatureStore,
    StoreMatrix,
    extract_features,
    fill_store,
    fixed_batches,
    zc_store_name,
)

__all__ = [
    "encode_image_latents",
    "encode_text_embeddings",
    "encode_zc",
    "denoising_record_steps",
    "ZCFeatures",
    "DEFAULT_UNET_LAYERS",
    "default_unet_layers",
    "latents_to_init_latents",
    "FeatureStore",
    "StoreMatrix",
    "fill_store",
    "fixed_batches",
    "zc_store_name",
    "extract_features",
    "run_feature_extraction",
    "finalize_features",
]
