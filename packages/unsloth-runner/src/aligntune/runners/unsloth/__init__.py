"""aligntune's Unsloth runner: a recipe becomes an Unsloth-accelerated TRL training run.

Importing this package is cheap and imports no training stack, so the image's preflight and the
launcher's `find_spec` probe never patch anything. The training modules import `unsloth` first
(see `stack.py`), before trl, transformers or peft, because Unsloth patches them on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from aligntune.core.plan import Plan
    from aligntune.core.recipe import Recipe

__all__ = ["create_trainer"]


def create_trainer(
    recipe: Recipe,
    plan: Plan,
    reward_callables: Mapping[str, Callable[..., Any]] | None = None,
    run_dir: str | Path | None = None,
    mode: str = "auto",
) -> Any:
    """A run on Unsloth (train/evaluate/save_model/predict) for a validated recipe and plan."""
    from aligntune.runners.common.backend import check_plan
    from aligntune.runners.unsloth.backend import BACKEND

    check_plan(BACKEND, recipe, plan)  # a refusal before Unsloth's import (seconds)
    from aligntune.runners.unsloth.trainer import create_trainer as build

    return build(recipe, plan, reward_callables, run_dir, mode)  # type: ignore[arg-type]
