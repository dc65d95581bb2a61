"""Load tokenizers and models for a recipe: hub id or local folder, revision, dtype, LoRA, QLoRA."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from aligntune.core.backends import BACKENDS
from aligntune.core.chat_templates import template_text
from aligntune.core.errors import BackendUnavailableError, ModelError, UserInputError
from aligntune.core.model_folder import TokenizerFacts
from aligntune.core.paths import local_path
from aligntune.core.recipe import Recipe
from aligntune.core.template_check import render_problems


def model_reference(reference: str, base_dir: Path) -> str:
    """A local folder made absolute (checked to exist), or the hub id unchanged."""
    path = local_path(reference, base_dir)
    if path is not None:
        if not path.is_dir():
            raise ModelError(f"model folder {path} not found")
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} has no config.json (not a transformers model)")
        return str(path)
    return reference


def seed(recipe: Recipe) -> None:
    """Seed Python, NumPy and torch with training.seed: the next random init is the same."""
    from transformers import set_seed

    set_seed(recipe.training.seed)


def first_line(exc: Exception) -> str:
    """The first line of an exception's message (library errors can run to pages)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_tokenizer(recipe: Recipe, reference: str) -> Any:
    """The tokenizer, with the recipe's chat template and a pad token guaranteed."""
    from transformers import AutoTokenizer

    model = recipe.model
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            reference, revision=model.revision, trust_remote_code=model.trust_remote_code
        )
    except Exception as exc:  # OSError, ValueError, hub errors: all mean "cannot use this model"
        raise ModelError(
            f"model.name_or_path: cannot load tokenizer of {reference}: {first_line(exc)}"
        ) from None
    return prepare_tokenizer(recipe, tokenizer)


def prepare_tokenizer(recipe: Recipe, tokenizer: Any) -> Any:
    """The recipe's chat template (a name's text) applied and checked on the first training row
    with this tokenizer (what `validate` could not do for a hub model), and a pad token."""
    template = template_text(recipe.model.chat_template)
    if template:
        tokenizer.chat_template = template
    problems = render_problems(recipe, tokenizer_facts(tokenizer), recipe.model.name_or_path)
    if problems:
        raise UserInputError("\n".join(problems))
    if tokenizer.pad_token is None:
        # Padding is masked out of every loss, so reusing EOS changes nothing the model learns.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tokenizer_facts(tokenizer: Any) -> TokenizerFacts:
    """What the template checks need of a loaded tokenizer (its template already applied)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special = [*tokenizer.all_special_tokens, *(t.content for t in added.values() if t.special)]
    return TokenizerFacts(
        chat_template=tokenizer.chat_template,
        eos_token=tokenizer.eos_token,
        bos_token=tokenizer.bos_token,
        tokens=frozenset(tokenizer.get_vocab()),
        special=frozenset(special),
    )


def _from_pretrained_kwargs(model_init: dict[str, Any]) -> dict[str, Any]:
    import torch

    kwargs = {k: v for k, v in model_init.items() if k != "quantization"}
    kwargs["dtype"] = getattr(torch, kwargs["dtype"])
    quantization = model_init.get("quantization")
    if quantization:
        # bitsandbytes 0.50 quantizes on the CPU too (transformers then places the model there):
        # what a quantized load needs is the package, which only the cuda images install.
        if importlib.util.find_spec("bitsandbytes") is None:
            raise BackendUnavailableError(
                f"model.quantization {quantization!r} needs bitsandbytes, "
                "which this environment does not install",
                hint="the cuda images install it: "
                + " or ".join(b.build_command("cuda") for b in BACKENDS if "cuda" in b.devices),
            )
        try:
            from transformers import BitsAndBytesConfig
        except ImportError as exc:  # pragma: no cover - transformers always has it
            raise BackendUnavailableError(str(exc)) from None
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=quantization == "4bit",
            load_in_8bit=quantization == "8bit",
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=kwargs["dtype"],
        )
    return kwargs


def load_causal_lm(reference: str, model_init: dict[str, Any], field: str) -> Any:
    """A causal LM for training or reference, as the recipe's model settings say."""
    from transformers import AutoModelForCausalLM

    kwargs = _from_pretrained_kwargs(model_init)
    try:
        model = AutoModelForCausalLM.from_pretrained(reference, **kwargs)
    except ImportError as exc:
        raise BackendUnavailableError(f"{field}: {first_line(exc)}") from None
    except Exception as exc:
        raise ModelError(f"{field}: cannot load model {reference}: {first_line(exc)}") from None
    if model_init.get("quantization"):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model


def load_scalar_model(reference: str, model_init: dict[str, Any], field: str, pad_id: int) -> Any:
    """A sequence-classification model with one output (a reward or value model)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            reference,
            num_labels=1,
            dtype=getattr(torch, model_init["dtype"]),
            revision=model_init.get("revision") if field == "model.name_or_path" else None,
            trust_remote_code=model_init["trust_remote_code"],
        )
    except Exception as exc:
        raise ModelError(f"{field}: cannot load {reference}: {first_line(exc)}") from None
    model.config.pad_token_id = pad_id
    return model


def lora_config(peft: dict[str, Any] | None) -> Any:
    """A peft LoraConfig, or None for full fine-tuning."""
    if peft is None:
        return None
    from peft import LoraConfig

    return LoraConfig(**peft)
