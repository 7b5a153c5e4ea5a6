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
