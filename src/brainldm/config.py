"""Named settings: the one place that holds the paper's choices.

Each value cites where it comes from (``seed_code.md`` is the study of the
authors' public code in ``shared/reference``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from brainldm._utils import (
    check_bool,
    check_number,
    check_option,
    check_sequence,
    check_text,
)
from brainldm.distributed import Execution
from brainldm.nsd import SPLIT_PRESETS, SplitPreset  # noqa: F401 (NSD facts, named here too)
from brainldm.ridge import TAKAGI2023_RIDGE

# ---------------------------------------------------------------------------
# Checks of single settings: each takes the setting's full name ("section.key")
# and the value, returns the value (lists as tuples) or raises a ValueError that
# names the setting, what was given and what is allowed.
# ---------------------------------------------------------------------------


def _number(**bounds):
    return lambda name, value: check_number(name, value, **bounds)


def _integer(low: int = 1):
    return lambda name, value: check_number(name, value, low=low, integer=True)


def _option(allowed):
    return lambda name, value: check_option(name, value, tuple(allowed))


def _optional(check):
    return lambda name, value: None if value is None else check(name, value)


def _list_of(check, what: str, min_len: int = 1, unique: bool = False):
    return lambda name, value: check_sequence(
        name, value, check, what=what, min_len=min_len, unique=unique
    )


def _device(name, value):
    if not isinstance(value, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|mps", value):
        raise ValueError(f"{name}={value!r} is not valid; allowed: 'cpu', 'cuda', 'cuda:N', 'mps'.")
    return value


_FRACTION = _number(low=0, high=1, low_open=True)  # in (0, 1]


def _voxel_set(name, value):
    """A voxel set: one name or path, or a list of label names (their union)."""
    if isinstance(value, str):
        return check_text(name, value)
    return check_sequence(name, value, check_text, what="label names", unique=True)


def _only_zero(name, value):
    if check_number(name, value) != 0:
        raise ValueError(f"{name}={value!r} is not supported; allowed: 0.0 (deterministic DDIM).")
    return value


def _multiple_of_8(name, value):
    value = check_number(name, value, low=8, integer=True)
    if value % 8:  # the VAE works on 8 × 8 pixel blocks
        raise ValueError(
            f"{name}={value!r} is not valid; allowed: a multiple of 8 (e.g. 320 or 512)."
        )
    return value


class _Section:
    """A config section: every field is checked by ``_checks[field]`` when built.

    Subclasses set ``_section`` (the TOML table name, used in messages) and
    ``_checks`` (field → check); a field without a check fails at import (KeyError).
    """

    _section = ""
    _checks: dict = {}

    def __post_init__(self) -> None:
        for f in fields(self):
            check = self._checks[f.name]
            value = check(f"{self._section}.{f.name}", getattr(self, f.name))
            object.__setattr__(self, f.name, value)


#: The two readings of the paper's z-only control (``reconstruction.z_only``).
Z_ONLY_CONTROLS = ("denoise_without_c", "vae_decode")

#: The two readings of the unique variance of Figures 7-8 (``encoding.unique_variance``):
#: the joint model's R² split between its spaces ("split", the captions' "splitting
#: accuracy values from the combined model"), or R²(joint) − R²(other space alone).
UNIQUE_VARIANCE_READINGS = ("split", "difference")


@dataclass(frozen=True)
class ReconstructionConfig(_Section):
    """How decoded (z, c) become images. Defaults are the paper's (seed_code.md §5).

    Attributes
    ----------
    strength : float
        Fraction of the DDIM trajectory re-run from the noised z (0.8 → 40 of 50 steps).
    num_inference_steps : int
        DDIM steps of a full trajectory (50).
    guidance_scale : float
        Classifier-free guidance s, with the empty prompt "" as unconditional (5.0,
        the LDM img2img script's): the z+c images.
    c_only_guidance_scale : float
        Guidance of the c-only control (7.5, the LDM txt2img script's default:
        the paper kept the defaults of both scripts).
    z_only : {"denoise_without_c", "vae_decode"}
        The z-only control. ``"denoise_without_c"`` (the paper's words, "we
        omitted c ... from step (iii)"): the noised z is denoised as for z+c
        but with the empty prompt on both guidance branches, ``n_samples``
        images. ``"vae_decode"``: the decoded z resized to ``image_size``, one
        deterministic image.
    eta : float
        DDIM η (0.0, deterministic given the initial noise). Only 0 is supported.
    n_samples : int
        Images generated per test image and condition (5); the deterministic
        ``z_only="vae_decode"`` image is generated once.
    seed : int
        Base seed (42); each sample's seed derives from (seed, nsd_id, sample).
    timesteps : {"compvis", "diffusers"}
        ``"compvis"`` reproduces the authors' sampler (noise at t = 801, denoise
        from 781); ``"diffusers"`` matches ``StableDiffusionImg2ImgPipeline`` (781).
    image_size : int
        Side of the generated images (512).
    init_posterior : {"shared_sample", "sample", "mean"}
        How the resized decoded-z image is re-encoded: one posterior sample
        shared by the image's samples (as the authors' code), a sample per
        sample, or the mean.
    uint8 : {"truncate", "round"}
        How images in [0, 1] become uint8 (the z image before re-encoding, and
        every written image): ``"truncate"`` as the authors' code, ``"round"`` as PIL.
    """

    strength: float = 0.8
    num_inference_steps: int = 50
    guidance_scale: float = 5.0
    c_only_guidance_scale: float = 7.5
    z_only: str = "denoise_without_c"
    eta: float = 0.0
    n_samples: int = 5
    seed: int = 42
    timesteps: str = "compvis"
    image_size: int = 512
    init_posterior: str = "shared_sample"
    uint8: str = "truncate"

    _section = "reconstruction"
    _checks = {
        "strength": _FRACTION,
        "num_inference_steps": _integer(),
        "guidance_scale": _number(low=0),
        "c_only_guidance_scale": _number(low=0),
        "z_only": _option(Z_ONLY_CONTROLS),
        "eta": _only_zero,
        "n_samples": _integer(),
        "seed": _integer(low=0),
        "timesteps": _option(("compvis", "diffusers")),
        "image_size": _multiple_of_8,
        "init_posterior": _option(("shared_sample", "sample", "mean")),
        "uint8": _option(("truncate", "round")),
    }


#: The paper's reconstruction settings.
TAKAGI2023_RECONSTRUCTION = ReconstructionConfig()


# ---------------------------------------------------------------------------
# Run configuration: one section per stage, loaded from TOML, presets below.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig(_Section):
    """Which NSD data. ``nsd_root`` None means ``$BRAINLDM_NSD_ROOT``."""

    _section = "data"
    _checks = {
        "nsd_root": _optional(check_text),
        "annotations_dir": _optional(check_text),
        "subjects": _list_of(_integer(), "subject numbers ≥ 1", unique=True),
        "split": _option(SPLIT_PRESETS),
        # One label name each; the ROIs themselves are checked against the atlas
        # on disk before a run starts (brainldm.pipeline.check_inputs).
        "z_roi": check_text,
        "c_roi": check_text,
        "atlas": check_text,
        "encoding_atlas": check_text,
        # "brain", "nsdgeneral", a label of encoding_atlas, a list of labels (their
        # union) or a NIfTI mask file (brainldm.nsd.load_voxel_set).
        "encoding_roi": _voxel_set,
        "fmt": _option(("hdf5", "nifti")),
        "zscore": check_bool,
        "order": _option(("first_presentation", "sorted")),
    }

    nsd_root: str | None = None
    annotations_dir: str | None = None
    subjects: tuple = (1, 2, 5, 7)
    split: str = "takagi2023"
    z_roi: str = "early"  # seed_code.md §2: streams label 1 → z
    c_roi: str = "ventral"  # streams label 5 → c
    atlas: str = "streams"
    encoding_atlas: str = "streams"
    # §3.4 "Whole-brain voxel-wise modeling": NSD's brainmask.nii.gz of the subject.
    encoding_roi: str | tuple = "brain"
    fmt: str = "hdf5"
    zscore: bool = False
    order: str = "first_presentation"


@dataclass(frozen=True)
class FeaturesConfig(_Section):
    """LDM and feature settings. ``model`` is a local SD v1.x folder or checkpoint."""

    _section = "features"
    _checks = {
        "model": _optional(check_text),
        "z_posterior": _option(("sample", "mean")),
        "batch_size": _integer(),
        "zc_strengths": _list_of(_FRACTION, "numbers in (0, 1]", unique=True),
        "zc_fractions": _list_of(_FRACTION, "numbers in (0, 1]", unique=True),
        "unet_layers": _list_of(check_text, "U-Net module names", min_len=0, unique=True),
        "unet_pool": _option(("flatten", "mean")),
        "unet_dtype": _option(("float16", "float32")),
        "device": _device,
        "z_size": _multiple_of_8,
    }

    model: str | None = None
    z_posterior: str = "sample"  # seed_code.md §3: a posterior sample
    # seed_code.md §3: images are resized to 320 px before the VAE (z of 4 × 40 × 40 =
    # 6,400 values); the paper's robustness check used 448 px (4 × 56 × 56).
    z_size: int = 320
    batch_size: int = 8
    zc_strengths: tuple = (0.25, 0.5, 0.75)
    # Figure 9: "Progress=20%, 66%, 100%" of the denoising steps run (see
    # brainldm.features.denoising_record_steps for the step of each fraction).
    zc_fractions: tuple = (0.2, 0.66, 1.0)
    # Empty: two down-path layers, the bottleneck and two up-path layers of the model
    # (§3.5 (iv): "two from the first stage, one from the bottleneck, two from the second").
    unet_layers: tuple = ()
    # §3.5: every feature is reduced to 6,400 by PCA, so the activation maps are kept
    # whole ("flatten"); "mean" keeps one value per channel.
    unet_pool: str = "flatten"
    unet_dtype: str = "float16"  # the stores of U-Net activations (10^5-10^6 values each)
    device: str = "cpu"


_ALPHAS = _list_of(_number(low=0, low_open=True), "positive numbers", unique=True)


@dataclass(frozen=True)
class DecodingConfig(_Section):
    """Ridge decoders, brain → (z, c)."""

    _section = "decoding"
    _checks = {
        "alphas": _ALPHAS,
        "cv": _integer(low=2),
        "grouped_folds": check_bool,
        "fit_intercept": check_bool,
        "standardize_X": check_bool,
        "standardize_Y": check_bool,
    }

    # The seed's ridge (seed_code.md §4), whose one home is brainldm.ridge.TAKAGI2023_RIDGE.
    alphas: tuple = tuple(TAKAGI2023_RIDGE["alphas"])
    cv: int = TAKAGI2023_RIDGE["cv"]
    grouped_folds: bool = False  # the seed's KFold leaks repeats across folds
    fit_intercept: bool = TAKAGI2023_RIDGE["fit_intercept"]  # none on uncentred Y
    standardize_X: bool = TAKAGI2023_RIDGE["standardize_X"]
    standardize_Y: bool = TAKAGI2023_RIDGE["standardize_Y"]


@dataclass(frozen=True)
class EvaluationConfig(_Section):
    """Identification and metrics. ``weights_dir`` holds local network weights.

    ``protocols``: ``"takagi"`` (the paper's two-way identification, Figure 5) and
    ``"mindeye"`` (the modern NSD suite, compared with published numbers in the
    report); see :data:`brainldm.evaluation.PROTOCOLS`. Without ``weights_dir``
    only what needs no downloaded weights is scored: PixCorr, SSIM, and
    identification with EfficientNet-Lite0 when its weights package is installed.
    """

    _section = "evaluation"
    _checks = {
        "protocols": _list_of(
            _option(("takagi", "mindeye", "braindiffuser")), "protocol names", unique=True
        ),
        "weights_dir": _optional(check_text),
        "n_bootstrap": _integer(),
        "device": _device,
    }

    protocols: tuple = ("takagi", "mindeye")
    weights_dir: str | None = None
    n_bootstrap: int = 1000
    device: str = "cpu"


@dataclass(frozen=True)
class EncodingConfig(_Section):
    """Voxel-wise encoding models (§3.5)."""

    _section = "encoding"
    _checks = {
        "enabled": check_bool,
        "n_components": _integer(),
        "q": _number(low=0, high=1, low_open=True, high_open=True),
        "alphas": _ALPHAS,
        "cv": _integer(low=2),
        "unique_variance": _option(UNIQUE_VARIANCE_READINGS),
        "seed": _integer(low=0),
    }

    enabled: bool = True
    n_components: int = 6400
    q: float = 0.05
    alphas: tuple = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    cv: int = 5
    unique_variance: str = "split"  # Figures 7-8: "obtained by splitting accuracy values"
    seed: int = 0  # the noise added to z for zc (per image) and the folds' shuffle


@dataclass(frozen=True)
class MapsConfig(_Section):
    """Cortical maps of the encoding results (Figures 6-9).

    ``surfaces``: views of nilearn's fsaverage5 drawn when NSD's transforms are
    on disk (else a volume mosaic).
    """

    _section = "maps"
    _checks = {"surfaces": _list_of(_option(("flat", "inflated")), "views", unique=True)}

    surfaces: tuple = ("flat", "inflated")


@dataclass(frozen=True)
class FiguresConfig(_Section):
    """The paper's Figures 3-9 (``brainldm figures RUN`` redraws them).

    ``subject``: the subject of Figures 3 and 6-9 (None: the first of
    ``data.subjects``; the paper shows subj01). ``n_images``: test images of
    Figures 3 and 4. ``sample``: which sample of each image is shown (the paper
    picked the sample most similar to the original, a choice that looks at the
    stimulus; a fixed sample does not).
    """

    _section = "figures"
    _checks = {
        "subject": _optional(_integer()),
        "n_images": _integer(),
        "sample": _integer(low=0),
    }

    subject: int | None = None
    n_images: int = 6
    sample: int = 0


@dataclass(frozen=True)
class ReportConfig(_Section):
    """The HTML report: how many test images the galleries show."""

    _section = "report"
    _checks = {"n_gallery_images": _integer()}

    n_gallery_images: int = 6


@dataclass(frozen=True)
class ScaleConfig(_Section):
    """Where the heavy stages run (``docs/scaling.md``).

    ``executor="local"`` runs in this process and never imports Ray; ``"ray"``
    runs features, reconstruction and encoding fits in shards on the Ray cluster
    at ``address`` (None: start a local one), with the same outputs. None of
    these settings changes a result, so none is part of a stage's cache key.
    """

    # Defaults are Execution's (brainldm.distributed), the one home of these settings.
    executor: str = Execution.executor
    address: str | None = Execution.address
    n_workers: int | None = Execution.n_workers
    shard_size: int = Execution.shard_size  # images per shard of features and reconstruction
    voxel_batch_size: int | None = Execution.voxel_batch_size  # voxels per encoding work item
    num_cpus_per_worker: float = Execution.num_cpus_per_worker
    num_gpus_per_worker: float | None = Execution.num_gpus_per_worker  # None: 1 with CUDA, else 0
    max_retries: int = Execution.max_retries

    _section = "scale"
    _checks = {
        "executor": _option(("local", "ray")),
        "address": _optional(check_text),
        "n_workers": _optional(_integer()),
        "shard_size": _integer(),
        "voxel_batch_size": _optional(_integer()),
        "num_cpus_per_worker": _number(low=0, low_open=True),
        "num_gpus_per_worker": _optional(_number(low=0)),
        "max_retries": _integer(low=0),
    }

    def execution(self, device: str = "cpu") -> Execution:
        """These settings as the :class:`~brainldm.distributed.Execution` the stages take."""
        fields_ = {f.name: getattr(self, f.name) for f in fields(self)}
        return Execution(**fields_, device=device)


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
    figures: FiguresConfig = FiguresConfig()
    report: ReportConfig = ReportConfig()
    scale: ScaleConfig = ScaleConfig()

    def __post_init__(self) -> None:
        subject, subjects = self.figures.subject, tuple(self.data.subjects)
        if subject is not None and subject not in subjects:
            raise ValueError(f"figures.subject = {subject} is not one of data.subjects "
                             f"{subjects}; give one of them, or None for the first.")  # fmt: skip

    @property
    def figure_subject(self) -> int:
        """The subject of Figures 3 and 6-9: ``figures.subject``, else the first of ``data.subjects``."""
        return self.figures.subject if self.figures.subject is not None else self.data.subjects[0]


_SECTIONS = {
    "data": DataConfig,
    "features": FeaturesConfig,
    "decoding": DecodingConfig,
    "reconstruction": ReconstructionConfig,
    "evaluation": EvaluationConfig,
    "encoding": EncodingConfig,
    "maps": MapsConfig,
    "figures": FiguresConfig,
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
        "decoding": {
            "grouped_folds": True,
            "fit_intercept": True,
            "alphas": (1e-2, 1e-1, 1.0, 10.0, 1e2, 1e3, 1e4, 1e5),
        },  # fmt: skip
        "features": {"z_posterior": "mean"},
    },
    # The embedded demo: synthetic NSD, the shipped tiny LDM trained on synthetic stimuli
    # (brainldm.testing.load_demo_ldm), small everything.
    "demo": {
        "data": {"subjects": (1, 2), "split": "modern"},
        "features": {
            "batch_size": 16,
            "zc_strengths": (0.25, 0.5, 0.75),
            "zc_fractions": (0.5, 1.0),
            "z_posterior": "mean",
        },  # fmt: skip
        "decoding": {
            "grouped_folds": True,
            "fit_intercept": True,
            "alphas": (1.0, 10.0, 100.0, 1e3, 1e4, 1e5),
        },  # fmt: skip
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
    return cls(**values)


def make_run_config(preset: str = "takagi2023", overrides: dict | None = None) -> RunConfig:
    """A run config from a preset plus nested overrides ``{section: {key: value}}``.

    Raises
    ------
    ValueError
        For an unknown preset, section or key (the message lists the valid ones).
    """
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
