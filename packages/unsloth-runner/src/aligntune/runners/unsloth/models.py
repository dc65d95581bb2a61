"""Load the policy through Unsloth's FastLanguageModel and add the recipe's LoRA adapters.

Import this module only after `stack` (which imports unsloth first).
"""

from __future__ import annotations

from typing import Any

from aligntune.core.errors import BackendUnavailableError, ModelError
from aligntune.core.recipe import Recipe
from aligntune.runners.common.models import first_line, prepare_tokenizer, seed

PREQUANTIZED_SUFFIX = "-bnb-4bit"
"""Hub ids of checkpoints saved already quantized to 4 bit (e.g. unsloth/*-bnb-4bit)."""


def is_prequantized(reference: str) -> bool:
    """Whether the model is a checkpoint saved in bitsandbytes 4 bit."""
    return reference.rstrip("/").lower().endswith(PREQUANTIZED_SUFFIX)


def from_pretrained_kwargs(
    recipe: Recipe, reference: str, model_init: dict[str, Any], device: str
) -> dict[str, Any]:
    """FastLanguageModel.from_pretrained arguments for the recipe's model settings."""
    import torch

    quantization = model_init.get("quantization", "none")
    four_bit = quantization == "4bit" or is_prequantized(reference)
    if (four_bit or quantization == "8bit") and device != "cuda":
        what = "a pre-quantized -bnb-4bit model" if four_bit else f"quantization {quantization!r}"
        raise BackendUnavailableError(
            f"model.name_or_path: {what} needs a CUDA GPU (bitsandbytes); none is usable here",
            hint="use the model's unquantized checkpoint with model.quantization: none",
        )
    kwargs: dict[str, Any] = {
        "model_name": reference,
        "max_seq_length": recipe.data.max_length,
        "dtype": getattr(torch, model_init["dtype"]),
        "load_in_4bit": four_bit,
        "load_in_8bit": quantization == "8bit",
        "full_finetuning": recipe.model.peft.method == "full",
        "trust_remote_code": recipe.model.trust_remote_code,
        "random_state": recipe.training.seed,
        # Our exact reference, not Unsloth's remapping of it to another hub repository.
        "use_exact_model_name": True,
    }
    if model_init.get("revision"):
        kwargs["revision"] = model_init["revision"]
    return kwargs


def peft_kwargs(recipe: Recipe, peft: dict[str, Any]) -> dict[str, Any]:
    """FastLanguageModel.get_peft_model arguments: the recipe's LoRA settings, none made up."""
    return {
        "r": peft["r"],
        "lora_alpha": peft["lora_alpha"],
        "lora_dropout": peft["lora_dropout"],
        "target_modules": peft["target_modules"],
        "bias": "none",
        # Unsloth's own checkpointing offloads activations; False keeps the recipe's choice.
        "use_gradient_checkpointing": "unsloth"
        if recipe.training.gradient_checkpointing
        else False,
        "random_state": recipe.training.seed,
    }


def load_policy(
    recipe: Recipe,
    reference: str,
    model_init: dict[str, Any],
    peft: dict[str, Any] | None,
    device: str,
) -> tuple[Any, Any]:
    """(model with adapters, tokenizer) through Unsloth; the tokenizer has a pad token."""
    from unsloth import FastLanguageModel

    kwargs = from_pretrained_kwargs(recipe, reference, model_init, device)
    # Weights the checkpoint lacks start random; get_peft_model seeds the adapters (random_state).
    seed(recipe)
    try:
        model, tokenizer = FastLanguageModel.from_pretrained(**kwargs)
    except ImportError as exc:
        raise BackendUnavailableError(f"model.name_or_path: {first_line(exc)}") from None
    except Exception as exc:  # hub, config and architecture errors all mean "cannot use it"
        raise ModelError(
            f"model.name_or_path: Unsloth cannot load {reference}: {first_line(exc)}"
        ) from None
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps the tokenizer
    tokenizer = prepare_tokenizer(recipe, tokenizer)
    if peft is not None:
        model = FastLanguageModel.get_peft_model(model, **peft_kwargs(recipe, peft))
    return model, tokenizer
