"""Private helpers shared by every subpackage: validation and safe writing."""

from brainldm._utils._checks import (
    check_bool,
    check_choices,
    check_number,
    check_option,
    check_positive_int,
    check_sequence,
    check_text,
)
from brainldm._utils._io import (
    atomic_path,
    files_fingerprint,
    path_fingerprint,
    remove_temporaries,
    write_json_atomic,
)

__all__ = [
    "atomic_path",
    "check_bool",
    "check_choices",
    "check_number",
    "check_option",
    "check_positive_int",
    "check_sequence",
    "check_text",
    "files_fingerprint",
    "path_fingerprint",
    "remove_temporaries",
    "write_json_atomic",
]
