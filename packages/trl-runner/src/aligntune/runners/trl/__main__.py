"""Entry point of `python -m aligntune.runners.trl`."""

import sys

from aligntune.runners.trl.cli import main

sys.exit(main())
