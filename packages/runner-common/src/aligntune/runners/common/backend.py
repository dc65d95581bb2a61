"""The hooks one training backend supplies to the shared run: a frozen record of small functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aligntune.core.algorithms import get_algorithm
from aligntune.core.backends import BackendName, BackendSpec
from aligntune.core.errors import BackendUnavailableError, UserInputError
from aligntune.core.plan import Plan
from aligntune.core.recipe import Recipe
from aligntune.runners.common.settings import TrainerSettings


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Backend:
    """How one backend differs from the shared run; everything else is the same for all."""

    spec: BackendSpec
    """The backend's registry record (`aligntune.core.backends`): name, title, runner, image."""
    load_policy: Callable[[Recipe, str, TrainerSettings, str], tuple[Any, Any]]
    """(recipe, model reference, settings, device) -> (policy model, tokenizer with a pad token)."""
    trainer_gets_peft_config: bool
    """True: trainers get the recipe's LoraConfig; False: the policy already carries adapters."""
    stack_packages: tuple[str, ...]
    """The backend's own distributions listed in manifest.json after its runner's."""
    import_stack: Callable[[], None] = _nothing
    """Called before any module that imports trl/transformers/torch (Unsloth must come first)."""
    check_device: Callable[[Plan], None] | None = None
    """Raise (or warn) when the plan's device cannot run this backend here."""
    extra_settings: Callable[[Recipe, str, TrainerSettings, str], dict[str, Any]] | None = None
    """(recipe, reference, settings, device) -> what trainer_settings.json adds under `name`."""
    check_built: Callable[[TrainerSettings, Any], None] | None = None
    """(settings, the built trainer's args): raise if the backend changed a resolved setting."""

    @property
    def name(self) -> BackendName:
        """The backend's name in plans, events and the manifest."""
        return self.spec.name

    @property
    def title(self) -> str:
        """The name people read in messages."""
        return self.spec.title

    @property
    def manifest_packages(self) -> tuple[str, ...]:
        """Distributions listed in manifest.json after aligntune-core (the runner's own first)."""
        return (self.spec.runner_distribution, *self.stack_packages)


def check_plan(backend: Backend, recipe: Recipe, plan: Plan) -> None:
    """Refuse a plan made for another backend, or an algorithm this backend cannot run."""
    algorithm = get_algorithm(recipe.algorithm.name)
    if backend.name not in algorithm.backends:
        raise BackendUnavailableError(
            f"backend {backend.name} does not support {algorithm.name}; "
            f"{', '.join(algorithm.backends)} does",
            hint="set backend: auto in the recipe",
        )
    if plan.backend != backend.name:
        raise UserInputError(f"the {backend.title} runner got a plan for backend {plan.backend!r}")
