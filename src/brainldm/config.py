"""Named settings: the one place that holds the paper's choices.

Each value cites where it comes from (``seed_code.md`` is the study of the
authors' public code in ``shared/reference``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SplitPreset:
    """Which sessions to use; test = shared images, train = the rest.

    Attributes
    ----------
    name : str
    max_session : int or None
        Use the sessions on disk numbered 1..max_session; None for every session.
    description : str
    """

    name: str
    max_session: int | None
    description: str


#: Train/test split presets. The test set is always the shared images
#: (``sharedix``) averaged over their repeats; training uses single trials.
SPLIT_PRESETS: dict[str, SplitPreset] = {
    # seed_code.md §2: sessions 1-37 (the public release in 2022-23) -> 982 test images (subj01).
    "takagi2023": SplitPreset(
        "takagi2023", 37, "Takagi & Nishimoto 2023: sessions 1-37 (982 shared test images)."
    ),
    # Every released session (1-40 today) -> 1000 shared test images for subjects 1, 2, 5, 7.
    "modern": SplitPreset("modern", None, "All sessions on disk (1000 shared test images)."),
}


@dataclass(frozen=True)
class ReconstructionConfig:
    """How decoded (z, c) become images. Defaults are the paper's (seed_code.md §5).

    Attributes
    ----------
    strength : float
        Fraction of the DDIM trajectory re-run from the noised z (0.8 → 40 of 50 steps).
    num_inference_steps : int
        DDIM steps of a full trajectory (50).
    guidance_scale : float
        Classifier-free guidance s, with the empty prompt "" as unconditional (5.0).
    eta : float
        DDIM η (0.0, deterministic given the initial noise). Only 0 is supported.
    n_samples : int
        Images generated per test image (5); "z" is deterministic and gets one.
    seed : int
        Base seed (42); each sample's seed derives from (seed, nsd_id, sample).
    timesteps : {"compvis", "diffusers"}
        ``"compvis"`` reproduces the authors' sampler (noise at t = 801, denoise
        from 781); ``"diffusers"`` matches ``StableDiffusionImg2ImgPipeline`` (781).
    image_size : int
        Side of the generated images (512).
    init_posterior : {"sample", "mean"}
        How the resized decoded-z image is re-encoded: a posterior sample, as the
        seed code, or the mean.
    """

    strength: float = 0.8
    num_inference_steps: int = 50
    guidance_scale: float = 5.0
    eta: float = 0.0
    n_samples: int = 5
    seed: int = 42
    timesteps: str = "compvis"
    image_size: int = 512
    init_posterior: str = "sample"

    def __post_init__(self) -> None:
        from brainldm._utils import check_option, check_positive_int

        if not 0 < self.strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {self.strength!r}.")
        check_positive_int("num_inference_steps", self.num_inference_steps)
        check_positive_int("n_samples", self.n_samples)
        check_positive_int("image_size", self.image_size)
        if self.eta != 0.0:
            raise ValueError(f"eta={self.eta!r} is not supported; allowed: 0.0 (DDIM).")
        check_option("timesteps", self.timesteps, ("compvis", "diffusers"))
        check_option("init_posterior", self.init_posterior, ("sample", "mean"))


#: The paper's reconstruction settings.
TAKAGI2023_RECONSTRUCTION = ReconstructionConfig()


# ---------------------------------------------------------------------------
# Run configuration: one section per stage, loaded from TOML, presets below.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """Which NSD data. ``nsd_root`` None means ``$BRAINLDM_NSD_ROOT``."""

    nsd_root: str | None = None
    annotations_dir: str | None = None
    subjects: tuple = (1, 2, 5, 7)
    split: str = "takagi2023"
    z_roi: str = "early"  # seed_code.md §2: streams label 1 → z
    c_roi: str = "ventral"  # streams label 5 → c
    atlas: str = "streams"
    encoding_atlas: str = "nsdgeneral"
    encoding_roi: str = "nsdgeneral"
    fmt: str = "hdf5"
    zscore: bool = False
    order: str = "first_presentation"


@dataclass(frozen=True)
class FeaturesConfig:
    """LDM and feature settings. ``model`` is a local SD v1.x folder or checkpoint."""

    model: str | None = None
    z_posterior: str = "sample"  # seed_code.md §3: a posterior sample
    batch_size: int = 8
    zc_strengths: tuple = (0.25, 0.5, 0.75)
    zc_fractions: tuple = (0.25, 0.5, 1.0)
    # Empty: two down-path layers, the bottleneck and two up-path layers of the model.
    unet_layers: tuple = ()
    device: str = "cpu"


@dataclass(frozen=True)
class DecodingConfig:
    """Ridge decoders, brain → (z, c)."""

    alphas: tuple = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0)  # seed_code.md §4
    cv: int = 5
    grouped_folds: bool = False  # the seed's KFold leaks repeats across folds
    fit_intercept: bool = False  # the seed fits none on uncentred Y
    standardize_X: bool = True
    standardize_Y: bool = False


@dataclass(frozen=True)
class EvaluationConfig:
    """Identification and metrics. ``weights_dir`` holds local network weights.

    ``protocols``: ``"takagi"`` (the paper's two-way identification, Figure 5) and
    ``"mindeye"`` (the modern NSD suite, compared with published numbers in the
    report); see :data:`brainldm.evaluation.PROTOCOLS`. Without ``weights_dir``
    only what needs no downloaded weights is scored: PixCorr, SSIM, and
    identification with EfficientNet-Lite0 when its weights package is installed.
    """

    protocols: tuple = ("takagi", "mindeye")
    weights_dir: str | None = None
    n_bootstrap: int = 1000
    device: str = "cpu"

    def __post_init__(self) -> None:
        from brainldm._utils import check_choices

        check_choices("protocols", self.protocols, ("takagi", "mindeye", "braindiffuser"))
        if not self.protocols:
            raise ValueError("protocols is empty; allowed: takagi, mindeye, braindiffuser.")


@dataclass(frozen=True)
class EncodingConfig:
    """Voxel-wise encoding models (§3.5)."""

    enabled: bool = True
    n_components: int = 6400
    q: float = 0.05
    alphas: tuple = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    cv: int = 5


@dataclass(frozen=True)
class MapsConfig:
    """Cortical maps of the encoding results (Figures 6-9).

    ``surfaces``: views of nilearn's fsaverage5 drawn when NSD's transforms are
    on disk (else a volume mosaic).
    """

    surfaces: tuple = ("flat", "inflated")

    def __post_init__(self) -> None:
        from brainldm._utils import check_choices

        check_choices("surfaces", self.surfaces, ("flat", "inflated"))


@dataclass(frozen=True)
class ReportConfig:
    """The HTML report: how many test images the galleries show."""

    n_gallery_images: int = 6

    def __post_init__(self) -> None:
        from brainldm._utils import check_positive_int

        check_positive_int("n_gallery_images", self.n_gallery_images)


@dataclass(frozen=True)
class ScaleConfig:
    """Where the heavy stages run (``docs/scaling.md``).

    ``executor="local"`` runs in this process and never imports Ray; ``"ray"``
    runs features, reconstruction and encoding fits in shards on the Ray cluster
    at ``address`` (None: start a local one), with the same outputs. None of
    these settings changes a result, so none is part of a stage's cache key.
    """

    executor: str = "local"
    address: str | None = None
    n_workers: int | None = None
    shard_size: int = 8  # images per shard of features and reconstruction
    voxel_batch_size: int | None = None  # voxels per encoding work item; None: all
    num_cpus_per_worker: float = 1
    num_gpus_per_worker: float | None = None  # None: 1 with a CUDA device, else 0
    max_retries: int = 3

    def __post_init__(self) -> None:
        from brainldm._utils import check_option

        check_option("executor", self.executor, ("local", "ray"))


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run, by stage."""

    preset: str = "takagi2023"
    data: DataConfig = DataConfig()
    features: FeaturesConfig = FeaturesConfig()
    decoding: DecodingConfig = DecodingConfig()
    reconstruction: ReconstructionConfig = ReconstructionConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    encoding: EncodingConfig = EncodingConfig()
    maps: MapsConfig = MapsConfig()
    report: ReportConfig = ReportConfig()
    scale: ScaleConfig = ScaleConfig()


_SECTIONS = {
    "data": DataConfig,
    "features": FeaturesConfig,
    "decoding": DecodingConfig,
    "reconstruction": ReconstructionConfig,
    "evaluation": EvaluationConfig,
    "encoding": EncodingConfig,
    "maps": MapsConfig,
    "report": ReportConfig,
    "scale": ScaleConfig,
}

#: Named presets: section -> overrides of the defaults above (which are the paper's).
PRESETS: dict[str, dict] = {
    # The paper exactly (seed_code.md): sessions 1-37, early→z, ventral→c, X standardised,
    # alphas 1e-6..1, 5 contiguous folds, no intercept; DDIM 50 / eta 0 / strength 0.8 /
    # guidance 5 / 5 samples / seed 42 / CompVis timesteps.
    "takagi2023": {},
    # What we recommend; departures from the paper are listed in docs/presets.md.
    "recommended": {
        "data": {"split": "modern"},
        "decoding": {"grouped_folds": True, "fit_intercept": True,
                     "alphas": (1e-2, 1e-1, 1.0, 10.0, 1e2, 1e3, 1e4, 1e5)},  # fmt: skip
        "features": {"z_posterior": "mean"},
    },
    # The embedded demo: synthetic NSD, tiny random LDM, small everything.
    "demo": {
        "data": {"subjects": (1, 2), "split": "modern"},
        "features": {"batch_size": 16, "zc_strengths": (0.5,), "zc_fractions": (0.5, 1.0),
                     "z_posterior": "mean"},  # fmt: skip
        "decoding": {"grouped_folds": True, "fit_intercept": True,
                     "alphas": (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)},  # fmt: skip
        "reconstruction": {"num_inference_steps": 8, "n_samples": 2, "image_size": 128},
        "evaluation": {"n_bootstrap": 200},
        "encoding": {"n_components": 256},
    },
}


def _build(cls, values: dict, where: str):
    import dataclasses

    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{where}]; valid keys: {valid}.")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**fixed)


def make_run_config(preset: str = "takagi2023", overrides: dict | None = None) -> RunConfig:
    """A run config from a preset plus nested overrides ``{section: {key: value}}``.

    Raises
    ------
    ValueError
        For an unknown preset, section or key (the message lists the valid ones).
    """
    from brainldm._utils import check_option

    check_option("preset", preset, PRESETS)
    merged: dict = {name: {} for name in _SECTIONS}
    for source in (PRESETS[preset], overrides or {}):
        unknown = sorted(set(source) - set(_SECTIONS) - {"preset"})
        if unknown:
            raise ValueError(f"unknown section(s) {unknown}; valid sections: {list(_SECTIONS)}.")
        for section, values in source.items():
            if section != "preset":
                merged[section].update(values)
    sections = {
        name: _build(cls, merged[name], name) if merged[name] else cls()
        for name, cls in _SECTIONS.items()
    }
    return RunConfig(preset=preset, **sections)


def load_run_config(path, overrides: dict | None = None) -> RunConfig:
    """Read a TOML run config (``preset = "..."`` plus ``[section]`` tables), then overrides."""
    import sys
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    data = tomllib.loads(Path(path).read_text())
    preset = data.pop("preset", "takagi2023")
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return make_run_config(preset, data)


def run_config_to_toml(config: RunConfig) -> str:
    """The config as TOML text (round-trips through :func:`load_run_config`)."""
    import dataclasses
    import json

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (tuple, list)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, str):
            return json.dumps(v)
        return repr(v)

    lines = [f"preset = {value(config.preset)}"]
    for name in _SECTIONS:
        lines.append(f"\n[{name}]")
        for f in dataclasses.fields(getattr(config, name)):
            v = getattr(getattr(config, name), f.name)
            if v is not None:
                lines.append(f"{f.name} = {value(v)}")
    return "\n".join(lines) + "\n"
