"""The TRL backend's hooks for the shared run (cheap to import: no torch, no trl)."""

from __future__ import annotations

from aligntune.runners.common.backend import Backend
from aligntune.runners.trl.models import load_policy

BACKEND = Backend(
    name="trl",
    title="TRL",
    load_policy=load_policy,
    trainer_gets_peft_config=True,
    manifest_packages=("aligntune-trl-runner",),
)
"""TRL as it is: plain transformers models, LoRA through each trainer's peft_config."""
