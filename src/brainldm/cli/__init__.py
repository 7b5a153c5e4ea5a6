"""The ``brainldm`` command: argparse subcommands that each call one library function."""

from brainldm.cli._main import main

__all__ = ["main"]
