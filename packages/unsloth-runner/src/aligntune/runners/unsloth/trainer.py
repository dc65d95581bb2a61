"""The Unsloth runner's trainer object: what `create_trainer` returns (the shared run, on Unsloth).

The run-directory lifecycle is the shared one (same files, events, exit codes); what differs is
in `backend.py`: the model (FastLanguageModel with its own LoRA) and a read-back check that
Unsloth's patched configs kept every setting we resolved.
"""

from __future__ import annotations

# isort: off
from aligntune.runners.unsloth import stack  # noqa: F401  (Unsloth before trl/transformers/peft)

# isort: on
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aligntune.core.recipe import Recipe
from aligntune.core.selection import Plan
from aligntune.runners.common.lifecycle import Mode
from aligntune.runners.common.trainer import Run, check_plan
from aligntune.runners.unsloth.backend import BACKEND


def create_trainer(
    recipe: Recipe,
    plan: Plan,
    reward_callables: Mapping[str, Callable[..., Any]] | None = None,
    run_dir: str | Path | None = None,
    mode: Mode = "auto",
) -> Run:
    """A run on Unsloth for a validated recipe and plan (what core.backend_factory calls)."""
    check_plan(BACKEND, recipe, plan)
    return Run(BACKEND, recipe, plan, reward_callables, run_dir, mode)
