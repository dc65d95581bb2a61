"""The TRL runner's policy: transformers' Auto classes (peft adds LoRA inside each trainer)."""

from __future__ import annotations

from typing import Any

from aligntune.core.recipe import Recipe
from aligntune.runners.common.models import load_causal_lm, load_tokenizer, seed
from aligntune.runners.common.settings import TrainerSettings


def load_policy(
    recipe: Recipe, reference: str, settings: TrainerSettings, device: str
) -> tuple[Any, Any]:
    """(causal LM, tokenizer) as the recipe's model settings say; no adapters yet."""
    tokenizer = load_tokenizer(recipe, reference)
    seed(recipe)  # weights the checkpoint lacks are initialised at random
    model = load_causal_lm(reference, settings.model_init, "model.name_or_path")
    return model, tokenizer
