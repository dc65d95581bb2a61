"""The TRL runner's trainer object: what `create_trainer` returns (the shared run, on TRL)."""

from __future__ import annotations

from functools import partial

from aligntune.runners.common.trainer import Run, create_run
from aligntune.runners.trl.backend import BACKEND

# This package always exported TrlRun(recipe, plan, ...); the shared Run takes the backend first.
TrlRun = partial(Run, BACKEND)
"""Run on TRL, called as before: TrlRun(recipe, plan, reward_callables, run_dir, mode)."""

create_trainer = partial(create_run, BACKEND)
"""A run on TRL for a validated recipe and plan (what aligntune.core.backend_factory calls):
create_trainer(recipe, plan, reward_callables=None, run_dir=None, mode="auto")."""
