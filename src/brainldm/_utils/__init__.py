"""Private helpers shared by every subpackage: validation and safe writing."""

from brainldm._utils._checks import check_choices, check_option, check_positive_int
from brainldm._utils._io import atomic_path, write_json_atomic

__all__ = [
    "atomic_path",
    "check_choices",
    "check_option",
    "check_positive_int",
    "write_json_atomic",
]
