"""The Unsloth runner's trainer object: what `create_trainer` returns (the shared run, on Unsloth).

The run-directory lifecycle is the shared one (same files, events, exit codes); what differs is
in `backend.py`: the model (FastLanguageModel with its own LoRA) and a read-back check that
Unsloth's patched configs kept every setting we resolved.
"""

from __future__ import annotations

# isort: off
from aligntune.runners.unsloth import stack  # noqa: F401  (Unsloth before trl/transformers/peft)

# isort: on
from functools import partial

from aligntune.runners.common.trainer import create_run
from aligntune.runners.unsloth.backend import BACKEND

create_trainer = partial(create_run, BACKEND)
"""A run on Unsloth for a validated recipe and plan (what core.backend_factory calls):
create_trainer(recipe, plan, reward_callables=None, run_dir=None, mode="auto")."""
