"""``python -m brainldm.rating``: moved to the ``brainldm`` command, ``brainldm rate``.

The command line is the ``brainldm`` command (``brainldm rate serve|results``);
this package is a library and imports nothing from the command line.
"""

import shlex
import sys

_args = shlex.join(sys.argv[1:]) or "serve|results ..."
print(
    f"python -m brainldm.rating is no longer a command; run `brainldm rate {_args}` instead.",
    file=sys.stderr,
)
sys.exit(2)
