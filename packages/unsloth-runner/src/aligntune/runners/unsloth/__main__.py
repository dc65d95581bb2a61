"""Entry point of `python -m aligntune.runners.unsloth`."""

import sys

from aligntune.runners.unsloth.cli import main

sys.exit(main())
