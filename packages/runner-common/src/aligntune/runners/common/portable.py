"""A saved model folder (final/, a checkpoint) that loads anywhere: it names the base model as the
user does, never where a container read it, and holds its tokenizer, chat template and generation
config (stop tokens, pad) beside the weights.

The names come from `aligntune.core.paths.renamed_paths` (the container path of each input -> the
user's host path); the libraries that save a folder write the path they loaded from, so the files
that name it are rewritten here before the folder is published.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aligntune.core.recipe import Recipe
from aligntune.core.template_check import stop_token
from aligntune.runners.common.models import tokenizer_facts

NAMING_FILES = ("adapter_config.json", "README.md")
"""The files peft and TRL write that name the base model (`base_model_name_or_path`, the model
card's `base_model`)."""

NOT_PORTABLE = ("training_args.bin",)
"""What `Trainer.save_model` leaves that is no part of a model: a pickle of the training
arguments (container paths inside); trainer_settings.json records them as JSON."""


def renamed_text(text: str, renames: Mapping[str, str]) -> str:
    """`text` with each path in `renames` (a whole path, or the start of one) replaced, in one
    pass (a new name is never renamed again), the longest path first."""
    if not renames:
        return text
    paths = "|".join(re.escape(old) for old in sorted(renames, key=len, reverse=True))
    pattern = re.compile(f"(?:{paths})" + r"(?![^/\s\"',)\]])")
    return pattern.sub(lambda found: renames[found.group(0)], text)


def renamed_json(value: Any, renames: Mapping[str, str]) -> Any:
    """A JSON value with every string naming a path in `renames` (or under it) renamed."""
    if isinstance(value, str):
        return renamed_text(value, renames)
    if isinstance(value, list):
        return [renamed_json(item, renames) for item in value]
    if isinstance(value, dict):
        return {key: renamed_json(item, renames) for key, item in value.items()}
    return value


def rename_paths(folder: Path, renames: Mapping[str, str]) -> None:
    """Rewrite the files of a saved model folder that name the base model by its path here."""
    if not renames:
        return
    for name in NAMING_FILES:
        path = folder / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            new = json.dumps(renamed_json(json.loads(text), renames), indent=2, sort_keys=True)
        else:
            new = renamed_text(text, renames)
        if new != text:
            path.write_text(new + ("\n" if path.suffix == ".json" else ""), encoding="utf-8")


def save_generation_config(model: Any, tokenizer: Any, recipe: Recipe, folder: Path) -> None:
    """generation_config.json beside the weights: the model's own settings, with the token the
    chat template ends a reply with and the tokenizer's eos as stop tokens, and its pad token."""
    from transformers import GenerationConfig

    config = getattr(model, "generation_config", None)
    config = GenerationConfig.from_dict(config.to_dict()) if config else GenerationConfig()
    ids = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    template, facts = tokenizer.chat_template, tokenizer_facts(tokenizer)
    for token in (stop_token(recipe.model.chat_template, template, facts), tokenizer.eos_token):
        if token is None:
            continue
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.append(token_id)
    stops = list(dict.fromkeys(i for i in ids if i is not None))
    config.eos_token_id = stops[0] if len(stops) == 1 else stops
    config.pad_token_id = tokenizer.pad_token_id
    config.save_pretrained(str(folder))


def finish_folder(
    folder: Path, model: Any, tokenizer: Any, recipe: Recipe, renames: Mapping[str, str]
) -> None:
    """Make a saved model folder self-contained and named as the user names its base."""
    tokenizer.save_pretrained(str(folder))
    save_generation_config(model, tokenizer, recipe, folder)
    for name in NOT_PORTABLE:
        (folder / name).unlink(missing_ok=True)
    rename_paths(folder, renames)
