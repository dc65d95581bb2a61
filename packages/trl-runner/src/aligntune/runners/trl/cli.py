"""`python -m aligntune.runners.trl`: what the trl image runs (the shared CLI, on TRL).

    run RECIPE --output RUN_DIR [--resume | --restart]
    selftest

Exit codes: see `aligntune.runners.common.cli`.
"""

from __future__ import annotations

from aligntune.runners.common import cli
from aligntune.runners.trl.backend import BACKEND


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, map outcomes to exit codes."""
    return cli.main(BACKEND, argv)
