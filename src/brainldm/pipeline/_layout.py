"""Where each artefact of a run lies: one object, as :class:`~brainldm.nsd.NSDLayout` for NSD.

A run folder::

    config.toml                     the settings of the latest run
    <stage>/.done.json              a finished stage: its key, settings, outputs
    <stage>/.started.json           a stage that started (resumed while its key holds)
    prepare/                        prepared splits (SubjectSplit files)
    features/<name>/                feature stores of z and c
    decode/subjNN_decoded.npz       DecodedLatents
    reconstruct/subjNN/             reconstructions (index.csv, zc/, z/, c/, originals/)
    reconstruct/subjNN_oracle/      reconstructions from the true z and c
    evaluate/<protocol>/            scores, summary.csv, tests.csv, identification.png
    encode/features/<name>/         zc and U-Net feature stores (the encode stage's)
    encode/subjNN/                  EncodingAnalyses, voxels.npz, accuracy volumes
    maps/subjNN/                    cortical maps (PNG)
    figures/                        the paper's Figures 3-9 (PNG, SVG, CSV)
    seeds/seedN/                    reruns with other seeds; seeds/*.csv their agreement
    report/report.html              the report (and summary.json)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    """Paths of a run folder; nothing is created or read here.

    Parameters
    ----------
    root : path-like
        The run folder (``brainldm run --out``).

    Examples
    --------
    >>> RunLayout("run").decoded(1).as_posix()
    'run/decode/subj01_decoded.npz'
    """

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @classmethod
    def containing(cls, path: str | os.PathLike) -> RunLayout:
        """The run folder that holds ``path`` (the nearest parent with ``config.toml``).

        Raises
        ------
        FileNotFoundError
            If no folder above ``path`` (or itself) is a run folder.
        """
        path = Path(path).absolute()
        for folder in (path, *path.parents):
            if (folder / "config.toml").is_file():
                return cls(folder)
        raise FileNotFoundError(
            f"{str(path)!r} is not inside a brainldm run folder (none of its parents holds "
            "config.toml)."
        )

    @staticmethod
    def subject_name(subject: int) -> str:
        """``"subj01"`` for 1: NSD's names, used for every per-subject file of a run."""
        return f"subj{int(subject):02d}"

    def config_toml(self) -> Path:
        return self.root / "config.toml"

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def marker(self, stage: str) -> Path:
        """The finished-stage marker (``.done.json``)."""
        return self.stage_dir(stage) / ".done.json"

    def started(self, stage: str) -> Path:
        """The started-stage marker (``.started.json``)."""
        return self.stage_dir(stage) / ".started.json"

    def prepared_dir(self) -> Path:
        return self.stage_dir("prepare")

    def features_dir(self) -> Path:
        return self.stage_dir("features")

    def zc_features_dir(self) -> Path:
        """Stores of zc and U-Net activations: made by the encode stage, removed with it."""
        return self.stage_dir("encode") / "features"

    def decoded(self, subject: int) -> Path:
        return self.stage_dir("decode") / f"{self.subject_name(subject)}_decoded.npz"

    def reconstructions(self, subject: int) -> Path:
        return self.stage_dir("reconstruct") / self.subject_name(subject)

    def oracle(self, subject: int) -> Path:
        """Reconstructions from the true z and c: the ceiling of the method."""
        return self.stage_dir("reconstruct") / f"{self.subject_name(subject)}_oracle"

    def rating_results(self, subject: int) -> Path:
        """Human ratings of a subject's reconstructions (``brainldm rate results`` writes it)."""
        from brainldm.reconstruction import RATING_DIR, RATING_RESULTS_FILE

        return self.reconstructions(subject) / RATING_DIR / RATING_RESULTS_FILE

    def evaluation(self, protocol: str) -> Path:
        return self.stage_dir("evaluate") / protocol

    def encoding(self, subject: int) -> Path:
        return self.stage_dir("encode") / self.subject_name(subject)

    def maps(self, subject: int) -> Path:
        return self.stage_dir("maps") / self.subject_name(subject)

    def figures(self) -> Path:
        """The paper's Figures 3-9: ``figureN.png``, ``.svg`` and ``.csv``."""
        return self.stage_dir("figures")

    def seed_checks(self) -> Path:
        """Reruns with other random seeds (``brainldm seeds``) and their agreement tables."""
        return self.root / "seeds"

    def seed_run(self, seed: int) -> Path:
        """The run folder of one other seed (its prepare, features and decode link to this run's)."""
        return self.seed_checks() / f"seed{int(seed)}"

    def report(self) -> Path:
        return self.stage_dir("report") / "report.html"

    def report_summary(self) -> Path:
        """What the stages recorded, as the report last read it."""
        return self.stage_dir("report") / "summary.json"
