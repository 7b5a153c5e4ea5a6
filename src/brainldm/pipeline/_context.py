"""What the stages of a run share: settings, folders, the loaded model."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from brainldm.config import RunConfig
from brainldm.pipeline._layout import RunLayout


@dataclass
class RunContext:
    """The config, the run folder, the NSD folder and the model (loaded once, when needed).

    Attributes
    ----------
    config : RunConfig
    run : RunLayout
    nsd : NSDLayout
    ldm : LatentDiffusion or None
    demo : bool
    progress : bool
    """

    config: RunConfig
    run: RunLayout
    nsd: object
    ldm: object = None
    demo: bool = False
    progress: bool = False

    def get_ldm(self):
        """The LDM, loaded once per process from ``features.model``."""
        if self.ldm is None:
            from brainldm.ldm import load_ldm

            model = self.config.features.model
            if model is None:
                raise ValueError(
                    "features.model is not set: give a local Stable Diffusion v1.x folder or "
                    "checkpoint (e.g. sd-v1-4.ckpt) in the config's [features] section."
                )
            self.ldm = load_ldm(model, device=self.config.features.device)
        return self.ldm

    def execution(self):
        """Where the heavy work runs (``[scale]`` and ``features.device``)."""
        return self.config.scale.execution(device=self.config.features.device)

    def model(self):
        """The model for the sharded stages: this process's, or a path each Ray worker loads."""
        if self.config.scale.executor == "local":
            return self.get_ldm
        if self.config.features.model is None:
            raise ValueError(
                "scale.executor='ray' needs features.model: workers load it from disk."
            )
        return self.config.features.model

    def split(self, subject: int, name: str, lazy: bool = False):
        """The prepared split ``name`` (``"decoding"`` or ``"encoding"``) of a subject.

        ``lazy``: betas stay on disk and are read by blocks of voxels
        (:meth:`brainldm.nsd.SubjectSplit.load`).
        """
        from brainldm.nsd import SubjectSplit

        done = json.loads(self.run.marker("prepare").read_text())
        path = self.run.prepared_dir() / done["outputs"][f"{subject}/{name}"]
        return SubjectSplit.load(path, lazy=lazy)

    def store(self, name: str, meta: dict | None = None, dtype: str | None = None):
        """The feature store ``name``: ``"z"``, ``"c"`` or a :func:`zc_store_name`."""
        from brainldm.features import FeatureStore

        folder = self.run.features_dir() if name in ("z", "c") else self.run.zc_features_dir()
        return FeatureStore(folder, name, meta, dtype=dtype)

    def voxel_set(self) -> str:
        """Name of the encoding voxel set (``data.encoding_roi``) in the prepared split."""
        from brainldm.nsd import voxel_set_name

        return voxel_set_name(self.config.data.encoding_roi)

    def image_ids(self) -> np.ndarray:
        """Every image a subject of the run saw (train and test), increasing."""
        ids = []
        for subject in self.config.data.subjects:
            split = self.split(subject, "decoding")
            ids += [split.train_nsd_ids, split.test_nsd_ids]
        return np.unique(np.concatenate(ids))

    def unet_layers(self) -> tuple[str, ...]:
        """``features.unet_layers``, or the model's default layers when empty."""
        from brainldm.features import default_unet_layers

        layers = self.config.features.unet_layers
        return tuple(layers) if layers else default_unet_layers(self.get_ldm().unet)
