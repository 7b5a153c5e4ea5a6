"""``python -m brainldm.rating serve|results ...``: same as ``brainldm rate``."""

import sys

from brainldm.rating._cli import main_rate

sys.exit(main_rate())
