"""The TRL runner's trainer object: what `create_trainer` returns (the shared run, on TRL)."""

from __future__ import annotations

from functools import partial

from aligntune.runners.common.trainer import create_run
from aligntune.runners.trl.backend import BACKEND

create_trainer = partial(create_run, BACKEND)
"""A run on TRL for a validated recipe and plan (what aligntune.core.backend_factory calls):
create_trainer(recipe, plan, reward_callables=None, run_dir=None, mode="auto")."""
