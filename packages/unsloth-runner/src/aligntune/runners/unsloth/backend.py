"""The Unsloth backend's hooks for the shared run.

Importing this module is cheap (no unsloth, no torch): the CLI can reject a bad recipe in a
moment. Every hook that touches the stack imports `stack` first, so Unsloth patches before
trl/transformers/peft load however the runner is entered.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from aligntune.core.backends import backend_of_runner
from aligntune.core.errors import AlignTuneError, BackendUnavailableError, ExitCode
from aligntune.core.plan import Plan
from aligntune.core.recipe import Recipe
from aligntune.runners.common.backend import Backend
from aligntune.runners.common.settings import TrainerSettings


class SettingsRewritten(AlignTuneError):
    """Unsloth's patched TRL config changed a resolved setting (another objective)."""

    exit_code = ExitCode.UNAVAILABLE


def import_stack() -> None:
    """Import unsloth (through `stack`) before anything imports trl, transformers or peft."""
    importlib.import_module("aligntune.runners.unsloth.stack")


def load_policy(
    recipe: Recipe, reference: str, settings: TrainerSettings, device: str
) -> tuple[Any, Any]:
    """(model with the recipe's LoRA adapters, tokenizer) through FastLanguageModel."""
    import_stack()
    from aligntune.runners.unsloth import models

    return models.load_policy(recipe, reference, settings.model_init, settings.peft, device)


def check_device(plan: Plan) -> None:
    """A CUDA plan needs a GPU here; a CPU plan runs in Unsloth's CPU mode, with a warning."""
    from aligntune.runners.unsloth import stack

    if plan.device == "cuda" and not stack.cuda_available():
        raise BackendUnavailableError(
            "the plan says cuda, but torch sees no CUDA GPU in this process",
            hint="check the container's --gpus flag and the NVIDIA driver (aligntune diagnose)",
        )
    if plan.device == "cpu":
        print(
            f"aligntune: warning: no CUDA GPU: Unsloth {stack.UNSLOTH_VERSION} trains in its CPU "
            "mode (LoRA only, far slower than on a GPU)",
            file=sys.stderr,
        )
    if stack.IMPORTED_TOO_LATE:
        print(
            f"aligntune: warning: {', '.join(stack.IMPORTED_TOO_LATE)} imported before unsloth; "
            "Unsloth's patches may be incomplete",
            file=sys.stderr,
        )


def unsloth_settings(
    recipe: Recipe, reference: str, settings: TrainerSettings, device: str
) -> dict[str, Any]:
    """What trainer_settings.json adds for Unsloth: its version and how the model was loaded."""
    from aligntune.runners.unsloth import stack
    from aligntune.runners.unsloth.models import from_pretrained_kwargs, peft_kwargs

    loading = from_pretrained_kwargs(recipe, reference, settings.model_init, device)
    loading["dtype"] = settings.model_init["dtype"]
    return {
        "version": stack.UNSLOTH_VERSION,
        "device": device,
        "from_pretrained": loading,
        "get_peft_model": peft_kwargs(recipe, settings.peft) if settings.peft else None,
    }


def check_kept(settings: TrainerSettings, args: Any) -> None:
    """Fail if Unsloth's patched config changed a setting we set (it rewrites GRPO defaults)."""
    changed = [
        f"{name}: {value!r} -> {getattr(args, name)!r}"
        for name, value in settings.config_kwargs.items()
        if name in KEPT_SETTINGS and hasattr(args, name) and _differs(getattr(args, name), value)
    ]
    if changed:
        raise SettingsRewritten(
            "Unsloth's patched trainer config changed resolved settings: " + "; ".join(changed)
        )


def _differs(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, float) and isinstance(actual, int | float):
        return abs(actual - wanted) > 1e-12
    if isinstance(wanted, list | tuple) and isinstance(actual, list | tuple):
        return list(actual) != list(wanted)
    return actual != wanted


KEPT_SETTINGS = frozenset(
    {
        "loss_type", "beta", "epsilon", "epsilon_high", "scale_rewards",
        "importance_sampling_level", "mask_truncated_completions", "num_generations",
        "max_completion_length", "temperature", "top_p", "num_iterations", "reward_weights",
        "label_smoothing", "desirable_weight", "undesirable_weight", "train_sampling_strategy",
        "learning_rate", "per_device_train_batch_size",
        "gradient_accumulation_steps", "max_steps", "seed", "max_length",
    }
)  # fmt: skip
"""Settings that change what is optimised; Unsloth must leave each as resolved."""

BACKEND = Backend(
    spec=backend_of_runner(__name__),
    load_policy=load_policy,
    # FastLanguageModel.get_peft_model already added the adapters; a peft_config would wrap twice.
    trainer_gets_peft_config=False,
    stack_packages=("unsloth", "unsloth_zoo"),
    import_stack=import_stack,
    check_device=check_device,
    extra_settings=unsloth_settings,
    check_built=check_kept,
)
"""Unsloth: FastLanguageModel with its own LoRA, a device check and a settings read-back."""
