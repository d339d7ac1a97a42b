"""``python -m netplay`` is the ``netplay`` command."""

import sys

from netplay.cli import command

sys.exit(command())
