"""Helpers for the Unsloth runner tests: they run its code in `.venv-unsloth` (unsloth installed).

Unsloth patches trl/transformers/peft on import, so it never enters the main `.venv` (a test
there proves the TRL runner does not load it). Without `.venv-unsloth` these tests skip, loudly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
UNSLOTH_PYTHON = Path(os.environ.get("ALIGNTUNE_UNSLOTH_PYTHON", REPO / ".venv-unsloth/bin/python"))
TRL_PYTHON = Path(os.environ.get("ALIGNTUNE_TRL_PYTHON", REPO / ".venv/bin/python"))
RUNNER_SRC = REPO / "packages" / "unsloth-runner" / "src"
INSTALL_HINT = (
    "pip install torch==2.13.0 && pip install --no-deps -r "
    "images/unsloth-runner/requirements-cpu.lock && pip install --no-deps -e "
    "packages/aligntune-core -e packages/runner-common -e packages/unsloth-runner"
)

# The pure modules (preflight, entrypoint) are tested in this interpreter too.
if str(RUNNER_SRC) not in sys.path:
    sys.path.append(str(RUNNER_SRC))


def _has_unsloth(python: Path) -> bool:
    if not python.is_file():
        return False
    probe = "import importlib.util as u; raise SystemExit(u.find_spec('unsloth') is None)"
    return subprocess.run([str(python), "-c", probe], check=False).returncode == 0


HAVE_UNSLOTH_VENV = _has_unsloth(UNSLOTH_PYTHON)
needs_unsloth_venv = pytest.mark.skipif(
    not HAVE_UNSLOTH_VENV,
    reason=(
        f"SKIPPED LOUDLY: no unsloth venv at {UNSLOTH_PYTHON}; the Unsloth runner was NOT tested. "
        f"Create it with: python -m venv .venv-unsloth && .venv-unsloth/bin/{INSTALL_HINT}"
    ),
)


def run_unsloth(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> Any:
    """`python -m aligntune.runners.unsloth ARGS` in .venv-unsloth; the CompletedProcess."""
    return subprocess.run(
        [str(UNSLOTH_PYTHON), "-m", "aligntune.runners.unsloth", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
