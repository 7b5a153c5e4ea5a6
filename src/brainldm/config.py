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
