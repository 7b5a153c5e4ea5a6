"""A feature store keyed by ``nsd_id``: resumable, never half-written.

Layout: ``folder/name/meta.json`` plus one ``{nsd_id:06d}.npy`` per image. Each
entry is written to a temporary name and renamed, so an interrupted run leaves
whole entries only, and a re-run computes just the missing ones. The metadata
(model fingerprint, settings, package version) must match to append.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from brainldm.config import FeaturesConfig

logger = logging.getLogger(__name__)


class FeatureStore:
    """Arrays of one feature (e.g. ``"z"``), one per ``nsd_id``, on disk.

    Parameters
    ----------
    folder : path-like
        Root folder of the store; this feature lives in ``folder/name``.
    name : str
        Feature name (``"z"``, ``"c"``, ``"zc_s0.50_f1.00"``, ...).
    meta : dict, optional
        Settings that produced the feature (model fingerprint, sizes, ...). When
        the store exists, they must equal what it holds.
    """

    def __init__(self, folder: str | os.PathLike, name: str, meta: dict | None = None) -> None:
        from brainldm import __version__
        from brainldm._utils import write_json_atomic

        self.path = Path(folder) / name
        self.name = name
        meta_path = self.path / "meta.json"
        if meta_path.exists():
            stored = json.loads(meta_path.read_text())
            if meta is not None:
                differ = {
                    k: (stored.get("settings", {}).get(k), v)
                    for k, v in meta.items()
                    if stored.get("settings", {}).get(k) != v
                }
                if differ:
                    raise ValueError(
                        f"feature store {str(self.path)!r} was made with other settings "
                        f"(stored, requested): {differ}; use another folder or delete it."
                    )
            self.meta = stored
        else:
            if meta is None:
                raise FileNotFoundError(f"no feature store at {str(self.path)!r}.")
            self.path.mkdir(parents=True, exist_ok=True)
            self.meta = {"name": name, "settings": meta, "package_version": __version__}
            write_json_atomic(meta_path, self.meta)

    def _file(self, nsd_id: int) -> Path:
        return self.path / f"{int(nsd_id):06d}.npy"

    def ids(self) -> np.ndarray:
        """Sorted ``nsd_id`` of the stored entries."""
        return np.array(sorted(int(p.stem) for p in self.path.glob("[0-9]*.npy")), dtype=np.int64)

    def __contains__(self, nsd_id: int) -> bool:
        return self._file(nsd_id).exists()

    def __len__(self) -> int:
        return len(self.ids())

    def missing(self, nsd_ids: Sequence[int]) -> np.ndarray:
        """The ids of ``nsd_ids`` (unique, in first-seen order) not stored yet."""
        unique = list(dict.fromkeys(int(i) for i in nsd_ids))
        return np.array([i for i in unique if i not in self], dtype=np.int64)

    def put(self, nsd_ids: Sequence[int], values: np.ndarray) -> None:
        """Store ``values[i]`` for ``nsd_ids[i]``, each entry atomically."""
        from brainldm._utils import atomic_path

        values = np.asarray(values)
        if len(values) != len(nsd_ids):
            raise ValueError(f"{len(nsd_ids)} nsd_ids but {len(values)} rows of values.")
        for nsd_id, value in zip(nsd_ids, values, strict=True):
            with atomic_path(self._file(nsd_id)) as tmp:
                np.save(tmp, value)

    def get(self, nsd_ids: Sequence[int]) -> np.ndarray:
        """Stacked entries, in the order of ``nsd_ids`` (repeats allowed).

        Returns
        -------
        values : ndarray of shape (len(nsd_ids), ...)
        """
        ids = [int(i) for i in nsd_ids]
        missing = [i for i in dict.fromkeys(ids) if i not in self]
        if missing:
            raise KeyError(
                f"feature {self.name!r} has no entry for nsd_id(s) {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''} in {str(self.path)!r}."
            )
        cache = {i: np.load(self._file(i)) for i in dict.fromkeys(ids)}
        return np.stack([cache[i] for i in ids]) if ids else np.empty((0,))


def zc_store_name(strength: float, fraction: float, layer: str | None = None) -> str:
    """Feature-store name of zc (or of a U-Net layer's activations) at a noise level and stage.

    Parameters
    ----------
    strength : float
        Noise level: the fraction of the DDIM trajectory z was noised to (0, 1].
    fraction : float
        Denoising stage: the fraction of those steps run (0, 1].
    layer : str, optional
        U-Net module name; None for zc itself.

    Examples
    --------
    >>> zc_store_name(0.5, 1.0)
    'zc_s0.50_f1.00'
    >>> zc_store_name(0.5, 0.25, "mid_block")
    'unet_mid_block_s0.50_f0.25'
    """
    levels = f"s{strength:.2f}_f{fraction:.2f}"
    return f"zc_{levels}" if layer is None else f"unet_{layer}_{levels}"


def fixed_batches(nsd_ids: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Split the unique ``nsd_ids`` (first-seen order) into consecutive batches.

    The batches depend on the ids alone, never on what is stored already, so a
    resumed run computes every entry in the same batch as an uninterrupted one
    and gets the same bits (a batch of another size or content can differ in the
    last bits of float32 results).
    """
    unique = np.array(list(dict.fromkeys(int(i) for i in nsd_ids)), dtype=np.int64)
    return [unique[i : i + batch_size] for i in range(0, len(unique), batch_size)]


def fill_store(
    store: FeatureStore,
    nsd_ids: Sequence[int],
    compute: Callable[[np.ndarray], np.ndarray],
    batch_size: int = 16,
    progress: bool = False,
) -> int:
    """Compute and store the entries of ``nsd_ids`` that are missing, batch by batch.

    Parameters
    ----------
    store : FeatureStore
    nsd_ids : sequence of int
    compute : callable
        ``compute(ids) -> array`` of shape (len(ids), ...).
    batch_size : int
    progress : bool

    Returns
    -------
    n_computed : int
    """
    from tqdm.auto import tqdm

    # Whole fixed batches are computed (see fixed_batches): resuming gives the same bits.
    todo = [ids for ids in fixed_batches(nsd_ids, batch_size) if len(store.missing(ids))]
    for ids in tqdm(todo, disable=not progress, desc=f"features {store.name}"):
        store.put(ids, compute(ids))
    n_computed = sum(len(ids) for ids in todo)
    logger.info("feature %s: %d computed, %d stored", store.name, n_computed, len(store))
    return n_computed


def extract_features(
    ldm,
    folder: str | os.PathLike,
    nsd_ids: Sequence[int],
    images: Callable[[np.ndarray], np.ndarray] | None = None,
    captions: Callable[[np.ndarray], list[list[str]]] | None = None,
    features: Sequence[str] = ("z", "c"),
    z_size: int = 320,
    z_posterior: str = FeaturesConfig.z_posterior,
    seed: int = 42,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, FeatureStore]:
    """Fill the ``z`` and/or ``c`` stores for ``nsd_ids``, resuming what is there.

    Parameters
    ----------
    ldm : LatentDiffusion
    folder : path-like
        Root of the feature stores (``folder/z``, ``folder/c``).
    nsd_ids : sequence of int
    images : callable, optional
        ``images(ids) -> uint8 (n, H, W, 3)``, e.g. ``partial(load_stimulus_images, layout)``;
        needed for ``"z"``.
    captions : callable, optional
        ``captions(ids) -> list of list of str``; needed for ``"c"``.
    features : sequence of {"z", "c"}
    z_size, z_posterior
        See :func:`encode_image_latents`. ``z_posterior`` defaults to the paper's
        (``FeaturesConfig.z_posterior``, a posterior sample). With ``"sample"``, each
        image's seed is derived from (``seed``, nsd_id), so the store does not depend
        on batching.
    seed : int
    batch_size : int
    progress : bool

    Returns
    -------
    stores : dict of str to FeatureStore
    """
    from brainldm._utils import check_choices
    from brainldm.features._extract import encode_image_latents, encode_text_embeddings

    check_choices("features", features, ("z", "c"))
    stores = {}
    if "z" in features:
        if images is None:
            raise ValueError("features includes 'z': pass images=...")
        meta = {"model": ldm.fingerprint, "size": z_size, "posterior": z_posterior, "seed": seed}
        store = FeatureStore(folder, "z", meta)

        def z_of(ids):
            seeds = [int(np.random.SeedSequence([seed, int(i)]).generate_state(1)[0]) for i in ids]
            return encode_image_latents(ldm, images(ids), z_size, z_posterior, seeds, batch_size)

        fill_store(store, nsd_ids, z_of, batch_size, progress)
        stores["z"] = store
    if "c" in features:
        if captions is None:
            raise ValueError("features includes 'c': pass captions=...")
        store = FeatureStore(folder, "c", {"model": ldm.fingerprint})
        fill_store(store, nsd_ids, lambda ids: encode_text_embeddings(ldm, captions(ids)),
                   batch_size, progress)  # fmt: skip
        stores["c"] = store
    return stores
