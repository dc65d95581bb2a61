"""Load a recipe's datasets with `datasets` and turn each row format into what TRL expects."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aligntune.core.algorithm_sections import SFTAlgorithm
from aligntune.core.algorithms import get_algorithm
from aligntune.core.conversations import template_problem
from aligntune.core.data import local_kind
from aligntune.core.errors import DataError
from aligntune.core.paths import local_path
from aligntune.core.recipe import Recipe
from aligntune.core.sections import DataSource
from aligntune.runners.common.chat_tokens import IGNORED, template_turns, tokenize_conversation
from aligntune.runners.common.sources import mix, read_source

_KEEP = {
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "alpaca": ("prompt", "completion"),
    "text": ("text",),
    "preference": ("prompt", "chosen", "rejected", "tools"),
}
"""Columns a trainer gets per format; the prompt format keeps every column (rewards read them)."""

_SHAPES = (("chosen", "preference"), ("completion", "prompt_completion"), ("text", "text"))
"""The row shape (`_KEEP`'s key) a row in aligntune's shape has, by a column it holds."""


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


def convert_row(row: dict[str, Any], fmt: str, system: str | None, chat: bool) -> dict[str, Any]:
    """One row in TRL's shape; a system prompt makes string prompts conversational."""
    row = dict(row)
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


def _wrap_turns(row: dict[str, Any], prompt_trained: bool) -> dict[str, Any]:
    """A pair or prompt/completion row whose text becomes turns (to sit beside conversations)."""
    out = dict(row)
    if "prompt" in out:
        out["prompt"] = _as_turns(out["prompt"], "user")
    for answer in ("completion", "chosen", "rejected"):
        if answer in out:
            out[answer] = _as_turns(out[answer], "assistant")
    if "completion" in out and "messages" not in out:
        prompt = [{**turn, "train": prompt_trained or None} for turn in out.pop("prompt")]
        out = {"messages": prompt + out.pop("completion"), **out}
    return out


def _conversational(rows: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(row.get(key), list) for row in rows for key in ("messages", "prompt", "chosen")
    )


def _unified(
    parts: list[tuple[str, list[dict[str, Any]]]], chat: bool, prompt_trained: bool
) -> list[list[dict[str, Any]]]:
    """Each source's rows; where the mixture joins conversations with text rows, the text rows
    become turns (and prompt/completion rows conversations) so that all share one shape."""
    formats = {fmt for fmt, _ in parts}
    if len(parts) == 1 or not any(_conversational(rows) for _, rows in parts):
        return [rows for _, rows in parts]
    if "text" in formats:
        raise DataError(
            "data.train: plain text cannot be mixed with conversations; "
            f"the mixture has {', '.join(sorted(formats))}"
        )
    if not chat:
        raise DataError(
            "data.train: mixing conversations with text rows needs a chat template; "
            "the tokenizer has none (set model.chat_template)"
        )
    return [[_wrap_turns(row, prompt_trained) for row in rows] for _, rows in parts]


def _arrow_safe(row: dict[str, Any]) -> dict[str, Any]:
    """A conversational row as TRL's trainers read it from Arrow: turns without aligntune's
    flags, tool-call arguments and tools as JSON text (one column type in every row)."""
    out = dict(row)
    for key, value in row.items():
        if key == "tools":
            out[key] = json.dumps(value)
        elif isinstance(value, list):
            turns = template_turns(value)
            for turn in turns:
                for call in turn.get("tool_calls", ()):
                    call["function"] = {
                        **call["function"],
                        "arguments": json.dumps(call["function"]["arguments"]),
                    }
            out[key] = turns
    return out


def _check_template(rows: list[dict[str, Any]], tokenizer: Any, where: str) -> None:
    """Tools and tool calls need a template that renders them (a hub model's is known here)."""
    uses_tools = any(row.get("tools") for row in rows)
    uses_calls = any(
        "tool_calls" in turn
        for row in rows
        for value in row.values()
        if isinstance(value, list)
        for turn in value
        if isinstance(turn, dict)
    )
    why = template_problem(str(tokenizer.chat_template or ""), uses_tools, uses_calls)
    if why:
        raise DataError(
            f"{where}: {why}",
            hint="use a model whose chat template renders tools, or set model.chat_template",
        )


def _sft_tokenized(rows: list[dict[str, Any]], recipe: Recipe, tokenizer: Any, where: str) -> Any:
    """Conversations as `input_ids` + `labels`, each turn trained or not as aligntune decides."""
    from datasets import Dataset

    algorithm = recipe.algorithm
    user_turns = isinstance(algorithm, SFTAlgorithm) and not algorithm.assistant_only_loss
    system = recipe.data.system_prompt
    encoded = []
    for index, row in enumerate(rows):
        turns = row["messages"]
        if system is not None:
            turns = _with_system(turns, system)
        try:
            encoded.append(tokenize_conversation(tokenizer, turns, row.get("tools"), user_turns))
        except DataError as exc:
            raise DataError(f"{where}: row {index + 1}: {exc}", hint=exc.hint) from None
    starts = [next((i for i, x in enumerate(e["labels"]) if x != IGNORED), 0) for e in encoded]
    if min(starts, default=0) >= recipe.data.max_length:
        # The trainer cuts every row at max_length, and a row with nothing left to learn is dropped.
        raise DataError(
            f"{where}: no conversation has a trained token within data.max_length "
            f"{recipe.data.max_length} (the earliest starts at token {min(starts)})",
            hint="raise data.max_length",
        )
    return Dataset.from_list(encoded)


def _dataset(
    rows: list[dict[str, Any]], fmt: str, recipe: Recipe, tokenizer: Any, where: str
) -> Any:
    """Rows in aligntune's shape as the dataset the algorithm's trainer takes."""
    from datasets import Dataset

    chat = bool(tokenizer.chat_template)
    _check_template(rows, tokenizer, where)
    if rows and "messages" in rows[0] and isinstance(recipe.algorithm, SFTAlgorithm):
        if not chat:
            raise DataError(
                f"{where}: conversations need a chat template; the tokenizer has none "
                "(set model.chat_template)"
            )
        return _sft_tokenized(rows, recipe, tokenizer, where)
    if _conversational(rows):
        rows = [_arrow_safe(row) for row in rows]
    try:
        dataset = Dataset.from_list(rows)
    except Exception as exc:  # pyarrow's errors: the same column with different types
        raise DataError(f"{where}: the rows do not make one table: {exc}") from None
    first = rows[0] if rows else {}
    shape = next((s for key, s in _SHAPES if key in first), fmt)
    return prepare(dataset, shape, recipe.data.system_prompt, chat, where)


def _read(
    recipe: Recipe, sources: list[tuple[str, DataSource]], chat: bool
) -> tuple[str, list[dict[str, Any]]]:
    """(format of the first source, the sources' rows unified and mixed)."""
    accepted = get_algorithm(recipe.algorithm.name).data_formats
    seed = recipe.training.seed
    algorithm = recipe.algorithm
    prompt_trained = isinstance(algorithm, SFTAlgorithm) and algorithm.completion_only_loss is False
    parts = []
    for field, source in sources:
        fmt, rows = read_source(source, recipe.base_dir, field, accepted, seed)
        if fmt == "alpaca" and chat:  # instructions become a user turn, outputs an answer
            rows = [_wrap_turns(row, prompt_trained) for row in rows]
        parts.append((fmt, rows))
    return parts[0][0], mix(_unified(parts, chat, prompt_trained), seed)


def load_data(recipe: Recipe, tokenizer: Any) -> PreparedData:
    """The recipe's train and eval data, each source checked against the algorithm's formats,
    mixed, and converted for its trainer."""
    settings = recipe.data
    chat = bool(tokenizer.chat_template)
    fmt, train = _read(recipe, settings.train_sources(), chat)
    eval_rows: list[dict[str, Any]] | None = None
    if settings.eval is not None:
        eval_fmt, eval_rows = _read(recipe, [("data.eval", settings.eval)], chat)
    elif settings.eval_fraction is not None:
        held = round(len(train) * settings.eval_fraction)
        if held < 1 or held >= len(train):
            raise DataError(
                f"data.eval_fraction: {settings.eval_fraction} of {len(train)} rows leaves "
                f"{held} for evaluation; use a larger dataset or fraction"
            )
        order = list(range(len(train)))
        random.Random(recipe.training.seed).shuffle(order)
        eval_rows = [train[i] for i in order[:held]]
        train = [train[i] for i in order[held:]]
        eval_fmt = fmt
    train_data = _dataset(train, fmt, recipe, tokenizer, "data.train")
    eval_data = None
    if eval_rows is not None:
        eval_data = _dataset(eval_rows, eval_fmt, recipe, tokenizer, "data.eval")
    return PreparedData(train=train_data, eval=eval_data, format=fmt)


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
