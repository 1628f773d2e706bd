"""``python -m harness`` is ``race-harness``."""

import sys

from harness.cli.main import main

sys.exit(main())
