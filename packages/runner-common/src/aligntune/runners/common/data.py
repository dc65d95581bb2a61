"""Load a recipe's datasets with `datasets` and turn each row format into what TRL expects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aligntune.core.algorithms import get_algorithm
from aligntune.core.data import FORMAT_COLUMNS, LABEL, local_kind, resolve_format
from aligntune.core.errors import DataError
from aligntune.core.paths import local_path
from aligntune.core.recipe import Recipe
from aligntune.core.sections import DataSource

_KEEP = {
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "alpaca": ("prompt", "completion"),
    "text": ("text",),
    "preference": ("prompt", "chosen", "rejected"),
    "feedback": ("prompt", "completion", LABEL),
    "feedback_messages": ("prompt", "completion", LABEL),
}
"""Columns a trainer gets per format; the prompt format keeps every column (rewards read them)."""


@dataclass(frozen=True)
class PreparedData:
    """Train and optional eval datasets in TRL's shape, and the format they came in."""

    train: Any
    eval: Any | None
    format: str


def load_source(source: DataSource, base_dir: Path, where: str) -> Any:
    """One data source as a `datasets.Dataset`, columns renamed, first max_samples rows."""
    from datasets import load_dataset

    local = local_path(source.path, base_dir)
    try:
        if local is not None:
            kind = local_kind(local)
            dataset = load_dataset(kind, data_files=str(local), split="train")
        else:
            dataset = load_dataset(
                source.path, source.subset, split=source.split, revision=source.revision
            )
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs the message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{where}: cannot load {source.path}: {first}") from None
    renames = {src: dst for dst, src in source.columns.items() if src != dst}
    missing = [f"{dst} -> {src}" for src, dst in renames.items() if src not in dataset.column_names]
    if missing:
        raise DataError(
            f"{where}: mapped column(s) not in the data: {', '.join(missing)}; "
            f"columns found: {', '.join(dataset.column_names)}"
        )
    dataset = dataset.rename_columns(renames)
    if source.max_samples is not None:
        dataset = dataset.select(range(min(source.max_samples, len(dataset))))
    if len(dataset) == 0:
        raise DataError(f"{where}: {source.path} has no rows")
    return dataset


def _as_turns(value: Any, role: str) -> list[dict[str, str]]:
    return value if isinstance(value, list) else [{"role": role, "content": str(value)}]


def _with_system(turns: list[dict[str, str]], system: str) -> list[dict[str, str]]:
    if turns and turns[0].get("role") == "system":
        return turns
    return [{"role": "system", "content": system}, *turns]


def _as_feedback(row: dict[str, Any], fmt: str) -> None:
    """A feedback row as TRL's unpaired preference: a conversation's last (assistant) turn is the
    completion; a text prompt or completion becomes a turn when the other one is turns."""
    if fmt == "feedback_messages":
        turns = row["messages"]
        row["prompt"], row["completion"] = turns[:-1], turns[-1:]
    if isinstance(row["prompt"], list) != isinstance(row["completion"], list):
        row["prompt"] = _as_turns(row["prompt"], "user")
        row["completion"] = _as_turns(row["completion"], "assistant")


def convert_row(row: dict[str, Any], fmt: str, system: str | None, chat: bool) -> dict[str, Any]:
    """One row in TRL's shape; a system prompt makes string prompts conversational."""
    row = dict(row)
    if LABEL in FORMAT_COLUMNS[fmt]:
        _as_feedback(row, fmt)
    if fmt == "alpaca":
        extra = row.get("input") or ""
        row["prompt"] = row["instruction"] + (f"\n\n{extra}" if extra else "")
        row["completion"] = row["output"]
        if chat:
            row["prompt"] = _as_turns(row["prompt"], "user")
            row["completion"] = _as_turns(row["completion"], "assistant")
    if system is None:
        return row
    if fmt == "messages":
        row["messages"] = _with_system(row["messages"], system)
        return row
    if "prompt" in row:
        row["prompt"] = _with_system(_as_turns(row["prompt"], "user"), system)
    for answer in ("completion", "chosen", "rejected"):
        if answer in row:
            row[answer] = _as_turns(row[answer], "assistant")
    return row


def check_labels(dataset: Any, fmt: str, where: str) -> None:
    """Feedback labels are booleans of both kinds (core reads no row of hub or parquet data)."""
    if LABEL not in FORMAT_COLUMNS[fmt]:
        return
    kind = getattr(dataset.features[LABEL], "dtype", None)
    if kind != "bool":
        raise DataError(
            f"{where}: column {LABEL} holds {kind or dataset.features[LABEL]}, not booleans; "
            "each row needs label true (a desirable completion) or false (an undesirable one)"
        )
    desirable = sum(dataset[LABEL])
    if desirable in (0, len(dataset)):
        only = "desirable (true)" if desirable else "undesirable (false)"
        raise DataError(
            f"{where}: every one of the {len(dataset)} rows is {only}; the feedback formats "
            "train on both kinds, so add rows with the other label"
        )


def prepare(dataset: Any, fmt: str, system: str | None, chat_template: bool, where: str) -> Any:
    """The dataset converted to TRL's columns for `fmt`."""
    if system is not None and fmt == "text":
        raise DataError(
            f"{where}: data.system_prompt needs conversations or prompts; plain text has no "
            "turns to put a system message before"
        )
    if system is not None and not chat_template:
        raise DataError(
            f"{where}: data.system_prompt needs a chat template; the tokenizer has none "
            "(set model.chat_template)"
        )
    converted = dataset.map(
        convert_row,
        fn_kwargs={"fmt": fmt, "system": system, "chat": chat_template},
        desc="aligntune: converting rows",
    )
    keep = _KEEP.get(fmt)
    if keep is not None:
        drop = [c for c in converted.column_names if c not in keep]
        converted = converted.remove_columns(drop)
    return converted


def load_data(recipe: Recipe, chat_template: bool) -> PreparedData:
    """The recipe's train and eval data, checked against the algorithm's formats."""
    accepted = get_algorithm(recipe.algorithm.name).data_formats
    settings = recipe.data
    train = load_source(settings.train, recipe.base_dir, "data.train")
    fmt = resolve_format(set(train.column_names), settings.train.format, accepted, "data.train")
    check_labels(train, fmt, "data.train")
    eval_data = None
    if settings.eval is not None:
        eval_data = load_source(settings.eval, recipe.base_dir, "data.eval")
        eval_fmt = resolve_format(
            set(eval_data.column_names), settings.eval.format, accepted, "data.eval"
        )
        check_labels(eval_data, eval_fmt, "data.eval")
        eval_data = prepare(eval_data, eval_fmt, settings.system_prompt, chat_template, "data.eval")
    elif settings.eval_fraction is not None:
        held = round(len(train) * settings.eval_fraction)
        if held < 1 or held >= len(train):
            raise DataError(
                f"data.eval_fraction: {settings.eval_fraction} of {len(train)} rows leaves "
                f"{held} for evaluation; use a larger dataset or fraction"
            )
        split = train.train_test_split(test_size=held, seed=recipe.training.seed)
        train, eval_data = split["train"], split["test"]
        eval_data = prepare(eval_data, fmt, settings.system_prompt, chat_template, "data.eval")
    train = prepare(train, fmt, settings.system_prompt, chat_template, "data.train")
    return PreparedData(train=train, eval=eval_data, format=fmt)


def tokenize_prompts(dataset: Any, tokenizer: Any, max_length: int) -> Any:
    """Prompt rows as `input_ids` (what TRL's PPOTrainer reads), chat-templated when turns."""

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        prompt = row["prompt"]
        if isinstance(prompt, list):
            ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        else:
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return {"input_ids": list(ids)[-max_length:]}

    tokenized = dataset.map(encode, desc="aligntune: tokenizing prompts")
    return tokenized.remove_columns([c for c in tokenized.column_names if c != "input_ids"])
