"""The experimental design: which image each trial showed, and which are shared.

NSD writes image ids 1-based (``masterordering``, ``subjectim``, ``sharedix``,
``73KID``, ``10KID``). This module converts them to 0-based ``nsd_id`` (the row
of ``nsd_stimuli.hdf5`` and of ``nsd_stim_info_merged.csv``) exactly once, in
:func:`_one_based_to_nsd_id`; nothing downstream sees a 1-based id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from brainldm.nsd._layout import NSDLayout

logger = logging.getLogger(__name__)


def _one_based_to_nsd_id(values: np.ndarray, what: str) -> np.ndarray:
    """Convert NSD's 1-based ids to 0-based int64 ids (the only such conversion)."""
    arr = np.asarray(values)
    as_int = np.rint(arr).astype(np.int64)
    if arr.size and (not np.array_equal(as_int, arr) or as_int.min() < 1):
        raise ValueError(f"{what} should hold 1-based integer ids, found min {arr.min()!r}.")
    return as_int - 1


@dataclass(frozen=True)
class ExpDesign:
    """Contents of ``nsd_expdesign.mat``, with 0-based ids.

    Attributes
    ----------
    masterordering : ndarray of shape (n_design_trials,)
        For each trial of the design (all sessions, 750 per session in NSD), the
        0-based index into a subject's image list (``subjectim`` column).
    subjectim : ndarray of shape (n_subjects, n_images_per_subject)
        0-based ``nsd_id`` of each subject's images; row 0 is subject 1.
    shared_nsd_ids : ndarray of shape (n_shared,)
        0-based ``nsd_id`` of the shared images (``sharedix``), in file order.
    """

    masterordering: np.ndarray
    subjectim: np.ndarray
    shared_nsd_ids: np.ndarray

    def trial_nsd_ids(self, subject: int) -> np.ndarray:
        """0-based ``nsd_id`` of every design trial for ``subject``, shape (n_design_trials,)."""
        n_subjects = self.subjectim.shape[0]
        if not 1 <= subject <= n_subjects:
            raise ValueError(
                f"subject={subject!r} is not in nsd_expdesign.mat; valid subjects: "
                f"{list(range(1, n_subjects + 1))}."
            )
        return self.subjectim[subject - 1, self.masterordering]


def load_expdesign(layout: NSDLayout) -> ExpDesign:
    """Read ``nsd_expdesign.mat`` and convert its 1-based ids to 0-based.

    Parameters
    ----------
    layout : NSDLayout
        The local NSD copy.

    Returns
    -------
    design : ExpDesign
    """
    from scipy.io import loadmat

    path = layout.require(layout.expdesign())
    mat = loadmat(path, variable_names=["masterordering", "subjectim", "sharedix"])
    missing = {"masterordering", "subjectim", "sharedix"} - set(mat)
    if missing:
        raise ValueError(f"{path} lacks the variable(s) {sorted(missing)}.")
    return ExpDesign(
        masterordering=_one_based_to_nsd_id(mat["masterordering"].ravel(), "masterordering"),
        subjectim=_one_based_to_nsd_id(mat["subjectim"], "subjectim"),
        shared_nsd_ids=_one_based_to_nsd_id(mat["sharedix"].ravel(), "sharedix"),
    )


def load_stim_info(layout: NSDLayout) -> pd.DataFrame:
    """Read ``nsd_stim_info_merged.csv``, indexed by ``nsd_id``.

    Returns
    -------
    stim_info : DataFrame
        One row per image (73,000 in NSD), index ``nsd_id`` (0-based), columns as in
        the file (``cocoId``, ``cocoSplit``, ``cropBox``, ``shared1000``, ...).
        ``subjectK_repR`` keep NSD's convention (1-based trial number, 0 = not shown).
    """
    path = layout.require(layout.stim_info())
    info = pd.read_csv(path, index_col=0)
    if "nsdId" in info.columns and not np.array_equal(info["nsdId"].to_numpy(), info.index):
        raise ValueError(f"{path}: column nsdId does not match the row index.")
    info.index.name = "nsd_id"
    return info


def load_responses(layout: NSDLayout, subject: int) -> pd.DataFrame:
    """Read a subject's ``responses.tsv`` (one row per trial, all sessions).

    Returns
    -------
    responses : DataFrame
        The file's 19 columns as NSD writes them, plus ``nsd_id`` (0-based, from
        ``73KID``) and ``trial`` (0-based position of the trial within its session,
        i.e. its row in that session's beta file).
    """
    path = layout.require(layout.responses(subject))
    resp = pd.read_csv(path, sep="\t")
    needed = {"SESSION", "73KID"}
    if not needed <= set(resp.columns):
        raise ValueError(f"{path} lacks the column(s) {sorted(needed - set(resp.columns))}.")
    resp["nsd_id"] = _one_based_to_nsd_id(resp["73KID"].to_numpy(), "responses.tsv 73KID")
    resp["trial"] = resp.groupby("SESSION", sort=False).cumcount()
    return resp
