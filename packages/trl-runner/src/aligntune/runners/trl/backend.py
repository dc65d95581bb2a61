"""The TRL backend's hooks for the shared run (cheap to import: no torch, no trl)."""

from __future__ import annotations

from aligntune.core.backends import backend_of_runner
from aligntune.runners.common.backend import Backend
from aligntune.runners.trl.models import load_policy

BACKEND = Backend(
    spec=backend_of_runner(__name__),
    load_policy=load_policy,
    trainer_gets_peft_config=True,
    stack_packages=(),
)
"""TRL as it is: plain transformers models, LoRA through each trainer's peft_config."""
