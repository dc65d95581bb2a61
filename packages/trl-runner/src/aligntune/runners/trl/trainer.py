"""The TRL runner's trainer object: what `create_trainer` returns (the shared run, on TRL)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from aligntune.core.recipe import Recipe
from aligntune.core.selection import Plan
from aligntune.runners.common.lifecycle import Mode
from aligntune.runners.common.trainer import Run, check_plan
from aligntune.runners.trl.backend import BACKEND

# This package always exported TrlRun(recipe, plan, ...); the shared Run takes the backend first.
TrlRun = partial(Run, BACKEND)
"""Run on TRL, called as before: TrlRun(recipe, plan, reward_callables, run_dir, mode)."""


def create_trainer(
    recipe: Recipe,
    plan: Plan,
    reward_callables: Mapping[str, Callable[..., Any]] | None = None,
    run_dir: str | Path | None = None,
    mode: Mode = "auto",
) -> Run:
    """A run on TRL for a validated recipe and plan (what aligntune.core.backend_factory calls)."""
    check_plan(BACKEND, recipe, plan)
    return Run(BACKEND, recipe, plan, reward_callables, run_dir, mode)
