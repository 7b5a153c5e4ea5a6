"""The paper's encoding analyses (§3.5; Figures 6-9), and one model alone.

:func:`fit_encoding_model` fits one model; :func:`run_encoding_analyses` fits
every model of the analysis (single feature sets, joint pairs, U-Net layer
sets) in one run, in this process or on Ray (``_distribute``), and derives the
unique variance of each space and the best layer of each voxel.
:class:`EncodingAnalyses` holds the lot and saves it to a folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainldm._utils import atomic_path, write_json_atomic
from brainldm.distributed import Execution
from brainldm.encoding._distribute import fit_models
from brainldm.encoding._models import PAPER_N_COMPONENTS, EncodingResult, FitOptions
from brainldm.encoding._stats import best_layer
from brainldm.encoding._stats import unique_variance as _unique_variance


def fit_encoding_model(
    X_train: Mapping[str, np.ndarray],
    Y_train: np.ndarray,
    X_test: Mapping[str, np.ndarray],
    Y_test: np.ndarray,
    groups: np.ndarray | None = None,
    n_components: int | None = PAPER_N_COMPONENTS,
    alphas: Sequence[float] | None = None,
    cv: int = 5,
    q: float = 0.05,
    backend: str = "numpy",
    device: str = "cpu",
    random_state: int | None = 0,
    name: str | None = None,
    progress: bool = False,
    *,
    execution: Execution | str | None = None,
) -> EncodingResult:
    """Fit one voxel-wise encoding model and test it on held-out images.

    Each space is reduced once (:func:`reduce_space`), the voxels are fitted in
    blocks of ``execution.voxel_batch_size`` (:func:`fit_voxel_block`), and the
    blocks are joined and tested over all voxels
    (:func:`assemble_encoding_result`). The result does not depend on the
    batch size, the executor or the number of workers.

    Parameters
    ----------
    X_train : mapping of str to ndarray of shape (n_train, ...)
        Feature spaces (e.g. ``{"z": z_train}``, or ``{"z": ..., "zc": ...}`` for a
        joint model), one row per training trial. X is the encoder's input.
    Y_train : ndarray of shape (n_train, n_voxels)
        Training betas (the encoder's targets), single trials.
    X_test : mapping of str to ndarray of shape (n_test, ...)
        Same spaces for the test images.
    Y_test : ndarray of shape (n_test, n_voxels)
        Test betas, averaged over repeats.
    groups : ndarray of int, shape (n_train,), optional
        ``nsd_id`` of each training trial: CV folds keep an image's repeats
        together, and PCA is fitted once per distinct image.
    n_components, alphas, cv, q, backend, device, random_state, progress
        Model options: see :class:`FitOptions`.
    name : str, optional
        Default: the space names joined by "+".
    execution : Execution or {"local", "ray"}, optional
        Where the fits run (:class:`~brainldm.distributed.Execution`); its
        ``voxel_batch_size`` sets the voxels per ridge fit and work item (None:
        as many as 4 GiB of betas and weights hold,
        :func:`~brainldm.encoding.default_voxel_batch_size`; each block repeats
        the decomposition of the features, so larger blocks cost less time).
        ``"local"`` (the default) never imports Ray; ``"ray"`` runs PCA and the blocks on Ray
        workers. Its ``device`` is not used: the ridge runs on ``device``.

    Returns
    -------
    result : EncodingResult
    """
    spaces = tuple(X_train)
    if not spaces or set(spaces) != set(X_test):
        raise ValueError(
            f"X_train and X_test must name the same feature spaces, got {list(X_train)} "
            f"and {list(X_test)}."
        )
    options = FitOptions(n_components=n_components, alphas=alphas, cv=cv, q=q, backend=backend,
                         device=device, random_state=random_state, progress=progress)  # fmt: skip
    models = {name or "+".join(spaces): spaces}
    (result,) = fit_models(models, X_train, Y_train, X_test, Y_test, groups, options,
                           execution=execution).values()  # fmt: skip
    return result


#: Files of :meth:`EncodingAnalyses.save` besides one ``{model}.npz`` per model.
_UNIQUE, _BEST, _INDEX = "unique.npz", "best_layers.npz", "analyses.json"


@dataclass
class EncodingAnalyses:
    """Every model of the paper's encoding analysis, and the maps derived from them.

    Attributes
    ----------
    results : dict of str to EncodingResult
        One per fitted model (single spaces and joint pairs), by model name:
        the feature set (``"z"``), or ``"{a}+{b}"`` for the joint model of a and b.
    unique : dict of str to ndarray of shape (n_voxels,)
        Unique variance of a space in a joint model, as ``unique_reading`` says.
        The key of space a in the joint model a + b is ``"{a}|{a}+{b}"``;
        :meth:`unique_variance` builds it.
    best_layers : dict of str to ndarray of int, shape (n_voxels,)
        Per layer set (e.g. a denoising step): index into its layer list, -1 if
        no layer is significant.
    layer_names : dict of str to list of str
        The layer list of each layer set.
    unique_reading : {"split", "difference"}
        ``"split"``: the share of the joint model's test R² credited to the space
        (the banded ridge's product-measure split, ``EncodingResult.r2_split``;
        the shares of a model sum to its R²). ``"difference"``: R² of the joint
        model minus R² of the model without the space.
    """

    results: dict
    unique: dict
    best_layers: dict
    layer_names: dict
    unique_reading: str = "difference"

    def unique_variance(self, space: str, model: str | tuple[str, str]) -> np.ndarray:
        """Return the unique variance of ``space`` in the joint model ``model``.

        Parameters
        ----------
        space : str
            A feature set of the joint model, e.g. ``"zc_s0.50"``.
        model : str or (str, str)
            The joint model, by name (``"z+zc_s0.50"``) or as its pair of spaces.

        Returns
        -------
        unique : ndarray of shape (n_voxels,)
            The split of the model's R² credited to ``space``, or R²(model) −
            R²(model without ``space``) (``unique_reading``).
        """
        name = model if isinstance(model, str) else "+".join(model)
        key = f"{space}|{name}"
        if key not in self.unique:
            have = sorted({tuple(k.split("|", 1)) for k in self.unique})
            raise KeyError(f"no unique variance of {space!r} in model {name!r}; have (space, "
                           f"model) {have}.")  # fmt: skip
        return self.unique[key]

    def unique_contrast(self, a: str, b: str) -> np.ndarray:
        """Unique variance of ``b`` minus that of ``a`` in the joint model ``a + b``, masked.

        The quantity of the paper's Figures 7-8 (red: b, blue: a), coloured only
        where the joint model is significant (FDR).

        Parameters
        ----------
        a, b : str
            The joint model's spaces, e.g. ``"z"`` and ``"zc_s0.50"``.

        Returns
        -------
        contrast : ndarray of shape (n_voxels,)
            ``unique(b) - unique(a)``; NaN where ``a+b`` is not significant.
        """
        joint = self.results[f"{a}+{b}"].significant
        diff = self.unique_variance(b, (a, b)) - self.unique_variance(a, (a, b))
        return np.where(joint, diff, np.nan)

    def best_layer_map(self, layer_set: str) -> np.ndarray:
        """The best layer's index per voxel as floats, NaN where no layer is significant.

        Parameters
        ----------
        layer_set : str
            A key of ``best_layers`` (one denoising stage).

        Returns
        -------
        layer : ndarray of shape (n_voxels,)
        """
        layer = np.asarray(self.best_layers[layer_set], dtype=float)
        layer[layer < 0] = np.nan
        return layer

    def save(self, folder: str | os.PathLike) -> Path:
        """Write every array to ``folder``; :meth:`load` reads it back.

        Writes ``{model}.npz`` (and its ``.json``) per model (see
        :meth:`EncodingResult.save`), ``unique.npz`` (keys ``{space}__in__{model}``),
        ``best_layers.npz`` (keys: the layer sets), then ``analyses.json``,
        which lists them. Each file is written atomically, the list last.

        Parameters
        ----------
        folder : path-like
            Created if missing.

        Returns
        -------
        folder : Path
        """
        folder = Path(folder)
        taken = {Path(_UNIQUE).stem, Path(_BEST).stem}.intersection(self.results)
        if taken:
            raise ValueError(f"model name(s) {sorted(taken)} clash with the files of "
                             f"EncodingAnalyses.save; rename the feature set(s).")  # fmt: skip
        unique_keys = {k: k.replace("|", "__in__") for k in self.unique}
        if len(set(unique_keys.values())) != len(unique_keys):
            raise ValueError(f"unique variance keys {sorted(self.unique)} clash once '|' is "
                             "written '__in__'.")  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        for name, result in self.results.items():
            result.save(folder / f"{name}.npz")
        _save_npz(folder / _UNIQUE, {unique_keys[k]: v for k, v in self.unique.items()})
        _save_npz(folder / _BEST, self.best_layers)
        write_json_atomic(folder / _INDEX, {
            "models": list(self.results), "unique": unique_keys,
            "best_layers": list(self.best_layers), "layer_names": self.layer_names,
            "unique_reading": self.unique_reading,
        })  # fmt: skip
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> EncodingAnalyses:
        """Read what :meth:`save` wrote to ``folder``.

        Raises
        ------
        FileNotFoundError
            Naming the first missing file.
        """
        folder = Path(folder)
        index = json.loads(_existing(folder / _INDEX).read_text())
        results = {}
        for name in index["models"]:
            path = _existing(folder / f"{name}.npz")
            _existing(path.with_name(path.name + ".json"))
            results[name] = EncodingResult.load(path)
        with np.load(_existing(folder / _UNIQUE)) as data:
            unique = {key: data[stored] for key, stored in index["unique"].items()}
        with np.load(_existing(folder / _BEST)) as data:
            best_layers = {key: data[key] for key in index["best_layers"]}
        return cls(results=results, unique=unique, best_layers=best_layers,
                   layer_names={k: list(v) for k, v in index["layer_names"].items()},
                   unique_reading=index.get("unique_reading", "difference"))  # fmt: skip


def _save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: EncodingAnalyses.load needs every file that "
            "EncodingAnalyses.save wrote."
        )
    return path


def run_encoding_analyses(
    train: Mapping[str, np.ndarray],
    Y_train: np.ndarray,
    test: Mapping[str, np.ndarray],
    Y_test: np.ndarray,
    *,
    singles: Sequence[str] = (),
    pairs: Sequence[tuple[str, str]] = (),
    layer_sets: Mapping[str, Sequence[str]] | None = None,
    groups: np.ndarray | None = None,
    options: FitOptions | None = None,
    execution: Execution | str | None = None,
    unique_variance: str = "split",
) -> EncodingAnalyses:
    """Run the paper's encoding analyses (§3.5; Figures 6-9), in this process or on Ray.

    Every feature set is reduced by PCA once, however many models use it. With
    ``execution="ray"``, PCA runs on the workers (one item per feature set),
    then every (model, voxel batch) pair of the whole analysis is one work item
    of a single :func:`~brainldm.distributed.map_shards` call, so the workers
    stay busy. The results do not depend on the executor, the voxel batch size
    or the number of workers; p-values and FDR are computed over all voxels.

    Parameters
    ----------
    train : mapping of str to ndarray of shape (n_train, ...)
        Every feature set by name (``"z"``, ``"c"``, ``"zc_s0.50"``,
        ``"unet_mid_block_f0.50"``, ...), rows aligned with ``Y_train``.
    Y_train : ndarray of shape (n_train, n_voxels)
        Training betas, single trials.
    test : mapping of str to ndarray of shape (n_test, ...)
        The same feature sets for the test images, rows aligned with ``Y_test``.
    Y_test : ndarray of shape (n_test, n_voxels)
        Test betas, averaged over repeats.
    singles : sequence of str
        (i) One model per feature set (z, c, zc, ...).
    pairs : sequence of (str, str)
        (ii)/(iii) Joint models a + b (z with zc at each noise level or step),
        and the unique variance of each space in them (``unique_variance``).
    layer_sets : mapping of str to sequence of str, optional
        (iv) For each step, the U-Net layers' feature sets; one model per layer
        and the best layer per voxel among significant models.
    groups : ndarray of int, shape (n_train,), optional
        nsd_id of each training trial.
    options : FitOptions, optional
        Model options (PCA size, alphas, folds, FDR level, ridge backend and
        device, seed, progress); default ``FitOptions()``, the paper's.
    execution : Execution or {"local", "ray"}, optional
        Where the fits run and ``voxel_batch_size``, the voxels per ridge fit
        and work item (see :func:`fit_encoding_model`). Default: this process,
        blocks of :func:`~brainldm.encoding.default_voxel_batch_size` voxels.
    unique_variance : {"split", "difference"}
        ``"split"`` (the paper's Figures 7-8, "obtained by splitting accuracy
        values from the combined model"): the share of the joint model's R²
        that its banded ridge credits to each space. ``"difference"``: R²(a + b)
        − R²(the other space alone), from the separately fitted single models.

    Returns
    -------
    analyses : EncodingAnalyses
    """
    from brainldm._utils import check_option
    from brainldm.config import UNIQUE_VARIANCE_READINGS

    check_option("unique_variance", unique_variance, UNIQUE_VARIANCE_READINGS)
    layer_sets = dict(layer_sets or {})
    needed = set(singles) | {n for pair in pairs for n in pair}
    needed |= {n for names in layer_sets.values() for n in names}
    missing = sorted(n for n in needed if n not in train or n not in test)
    if missing:
        raise ValueError(f"feature sets {missing} are not in train/test; have {sorted(train)}.")
    models: dict[str, tuple[str, ...]] = {}

    def add(name: str, spaces: tuple[str, ...]) -> None:
        if models.setdefault(name, spaces) != spaces:
            raise ValueError(
                f"model name {name!r} stands for both {models[name]} and {spaces}; rename "
                "the feature set."
            )

    for name in singles:
        add(name, (name,))
    for a, b in pairs:
        add(f"{a}+{b}", (a, b))
        add(b, (b,))
        add(a, (a,))
    for names in layer_sets.values():
        for name in names:
            add(name, (name,))
    results = fit_models(models, train, Y_train, test, Y_test, groups, options,
                         execution=execution)  # fmt: skip
    unique = {}
    for a, b in pairs:
        joint = results[f"{a}+{b}"]
        for space, other in ((a, b), (b, a)):
            if unique_variance == "split":
                share = joint.r2_split[joint.spaces.index(space)]
                unique[f"{space}|{a}+{b}"] = np.asarray(share, dtype=np.float64)
            else:
                unique[f"{space}|{a}+{b}"] = _unique_variance(joint.r2, results[other].r2)
    best_layers = {}
    for label, names in layer_sets.items():
        fitted = [results[n] for n in names]
        best_layers[label] = best_layer(
            np.stack([f.r for f in fitted]), np.stack([f.significant for f in fitted])
        )
    return EncodingAnalyses(
        results=results,
        unique=unique,
        best_layers=best_layers,
        layer_names={k: list(v) for k, v in layer_sets.items()},
        unique_reading=unique_variance,
    )
