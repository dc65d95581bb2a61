"""The hooks one training backend supplies to the shared run: a frozen record of small functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aligntune.core.recipe import Recipe
from aligntune.core.selection import Plan
from aligntune.runners.common.settings import TrainerSettings


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Backend:
    """How one backend differs from the shared run; everything else is the same for all."""

    name: str
    """The backend's name in plans, events and the manifest ("trl", "unsloth")."""
    title: str
    """The name people read in messages ("TRL", "Unsloth")."""
    load_policy: Callable[[Recipe, str, TrainerSettings, str], tuple[Any, Any]]
    """(recipe, model reference, settings, device) -> (policy model, tokenizer with a pad token)."""
    trainer_gets_peft_config: bool
    """True: trainers get the recipe's LoraConfig; False: the policy already carries adapters."""
    manifest_packages: tuple[str, ...]
    """Distributions listed in manifest.json after aligntune-core (the runner's own first)."""
    import_stack: Callable[[], None] = _nothing
    """Called before any module that imports trl/transformers/torch (Unsloth must come first)."""
    check_device: Callable[[Plan], None] | None = None
    """Raise (or warn) when the plan's device cannot run this backend here."""
    extra_settings: Callable[[Recipe, str, TrainerSettings, str], dict[str, Any]] | None = None
    """(recipe, reference, settings, device) -> what trainer_settings.json adds under `name`."""
    check_built: Callable[[TrainerSettings, Any], None] | None = None
    """(settings, the built trainer's args): raise if the backend changed a resolved setting."""
