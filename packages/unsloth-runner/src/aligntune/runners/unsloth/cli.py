"""`python -m aligntune.runners.unsloth`: what the unsloth image runs (after its preflight).

    run RECIPE --output RUN_DIR [--resume | --restart]
    selftest

The shared CLI, on Unsloth: unsloth is imported only after the recipe loaded (a typo fails fast).
Exit codes: see `aligntune.runners.common.cli`.
"""

from __future__ import annotations

from aligntune.runners.common import cli
from aligntune.runners.unsloth.backend import BACKEND


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, map outcomes to exit codes."""
    return cli.main(BACKEND, argv)
