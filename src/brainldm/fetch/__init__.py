"""Explicit downloads of the real inputs (NSD, COCO captions, weights): verified, resumable.

Nothing else in brainldm downloads. Every transfer goes through a ``.part`` file
that a later call resumes, is checked (size, and ETag / SHA-256 where a source
states one) and renamed into place only when complete; a second call downloads
nothing. boto3 (NSD) and huggingface_hub (weights) are imported only when used:
``pip install 'brainldm[fetch]'``.
"""

from brainldm.fetch._common import FetchError, Transfer, format_size
from brainldm.fetch._nsd import NSD_MANIFEST, FetchPlan, fetch_nsd
from brainldm.fetch._nsd_files import (
    COCO_ANNOTATIONS_URL,
    DATA_ACCESS_REMINDER,
    NSD_BUCKET,
    NSD_SESSIONS,
    NSD_SPACES,
    NSD_WHAT,
    NSDFile,
    nsd_files,
    parse_sessions,
)
from brainldm.fetch._status import FileStatus, fetch_status, status_table
from brainldm.fetch._weights import (
    HASHES_FILE,
    SD_FOLDER,
    WeightFile,
    fetch_weights,
    weight_files,
    weight_names,
)

__all__ = [
    # NSD
    "fetch_nsd",
    "nsd_files",
    "parse_sessions",
    "NSDFile",
    "FetchPlan",
    "NSD_BUCKET",
    "NSD_SESSIONS",
    "NSD_SPACES",
    "NSD_WHAT",
    "NSD_MANIFEST",
    "COCO_ANNOTATIONS_URL",
    "DATA_ACCESS_REMINDER",
    # weights
    "fetch_weights",
    "weight_files",
    "weight_names",
    "WeightFile",
    "HASHES_FILE",
    "SD_FOLDER",
    # status
    "fetch_status",
    "status_table",
    "FileStatus",
    # shared
    "FetchError",
    "Transfer",
    "format_size",
]
