"""``python -m harness`` is ``race-harness``."""

import sys

from .cli import main

sys.exit(main())
