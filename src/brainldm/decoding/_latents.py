"""The decoders' output: z and c predicted for each test image, with their scores."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: What the decoders predict, in the paper's order: z (image latents), c (text embeddings).
TARGETS = ("image_latents", "text_embeddings")


@dataclass
class DecodedLatents:
    """z and c decoded from one subject's brain activity, one row per test image.

    This is what :func:`brainldm.reconstruction.reconstruct` takes and what
    ``brainldm reconstruct --decoded`` reads.

    Attributes
    ----------
    nsd_ids : ndarray of int, shape (n_images,)
    image_latents : ndarray of float32, shape (n_images, 4, h, w), or None
        Decoded z (4 × 40 × 40 for 320 px images).
    text_embeddings : ndarray of float32, shape (n_images, 77, d), or None
        Decoded c (77 × 768 for SD v1.x).
    scores : dict of str to ndarray of shape (n_images,)
        Per target, the Pearson r between decoded and true features of each
        image across feature dimensions (the seed code's printed score); empty
        when the true features were not given.
    settings : dict
        How the latents were decoded (subject, ROIs, ridge settings, chosen alphas).
    """

    nsd_ids: np.ndarray
    image_latents: np.ndarray | None = None
    text_embeddings: np.ndarray | None = None
    scores: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nsd_ids = np.asarray(self.nsd_ids).astype(np.int64)
        n = len(self.nsd_ids)
        for name in (*TARGETS, *(f"scores[{k!r}]" for k in self.scores)):
            value = self._get(name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows but nsd_ids has {n}.")

    def _get(self, name: str):
        if name.startswith("scores["):
            return self.scores[name[8:-2]]
        return getattr(self, name)

    def __len__(self) -> int:
        return len(self.nsd_ids)

    def mean_scores(self) -> dict[str, float]:
        """Mean per-image r of each target over the images."""
        return {k: float(np.mean(v)) for k, v in self.scores.items()}

    def select(self, start: int | None = None, stop: int | None = None) -> DecodedLatents:
        """Rows ``start:stop`` (e.g. one shard of the test images)."""
        rows = slice(start, stop)
        return DecodedLatents(
            self.nsd_ids[rows],
            None if self.image_latents is None else self.image_latents[rows],
            None if self.text_embeddings is None else self.text_embeddings[rows],
            {k: v[rows] for k, v in self.scores.items()},
            dict(self.settings),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` (arrays, and the settings as JSON), atomically.

        Returns
        -------
        path : Path
        """
        from brainldm._utils import atomic_path

        arrays = {"nsd_ids": self.nsd_ids}
        for name in TARGETS:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        arrays |= {f"score_{k}": v for k, v in self.scores.items()}
        arrays["settings"] = np.array(json.dumps(self.settings, sort_keys=True, default=str))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> DecodedLatents:
        """Read what :meth:`save` wrote (or an ``.npz`` with ``nsd_ids`` and the latents).

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            Naming ``path``, if it is not such an archive.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"decoded latents {str(path)!r} do not exist.")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(
                f"{str(path)!r} cannot be read as decoded latents (a .npz archive of arrays: "
                f"{type(err).__name__}); give the file that `brainldm decode` wrote."
            ) from None
        missing = [k for k in ("nsd_ids",) if k not in arrays]
        if missing or not any(t in arrays for t in TARGETS):
            raise ValueError(
                f"{str(path)!r} lacks the array(s) {missing or list(TARGETS)}: it holds "
                f"{sorted(arrays)}."
            )
        settings = json.loads(str(arrays["settings"])) if "settings" in arrays else {}
        scores = {k[6:]: v for k, v in arrays.items() if k.startswith("score_")}
        return cls(arrays["nsd_ids"], arrays.get(TARGETS[0]), arrays.get(TARGETS[1]), scores,
                   settings)  # fmt: skip
