"""``python -m netplay`` is the ``netplay`` command."""

import sys

from netplay.cli import main

sys.exit(main())
