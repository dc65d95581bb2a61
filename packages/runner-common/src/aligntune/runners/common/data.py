"""A recipe's data as each trainer takes it: the sources read and mixed (`sources.py`), then
conversations tokenized for SFT with labels turn by turn (`chat_tokens.py`), other rows put into
TRL's columns (system prompt added, tools and tool-call arguments as JSON text for Arrow)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aligntune.core.algorithm_sections import SFTAlgorithm
from aligntune.core.data import FORMAT_COLUMNS, LABEL
from aligntune.core.errors import DataError
from aligntune.core.mixture import SPLIT_HINT, split_eval, split_problem
from aligntune.core.recipe import Recipe
from aligntune.core.trained_turns import template_problem, template_turns
from aligntune.runners.common.chat_tokens import IGNORED, tokenize_conversation
from aligntune.runners.common.sources import as_turns, conversational, read_sources

_KEEP = {
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
    "preference": ("prompt", "chosen", "rejected", "tools"),
    "feedback": ("prompt", "completion", LABEL, "tools"),
}
"""Columns a trainer gets per format; the prompt format keeps every column (rewards read them)."""

_SHAPES = (
    (LABEL, "feedback"),
    ("chosen", "preference"),
    ("completion", "prompt_completion"),
    ("text", "text"),
)
"""The row shape (`_KEEP`'s key) a row in aligntune's shape has, by a column it holds."""


@dataclass(frozen=True)
class PreparedData:
    """Train and optional eval datasets in TRL's shape, and the format they came in."""

    train: Any
    eval: Any | None
    format: str
    examples: tuple[tuple[str, list[dict[str, Any]]], ...] = ()
    """The first rows of the eval split and of the training data (the sample prompts' sources),
    system prompt applied, before any tokenizing."""


EXAMPLE_ROWS = 64
"""Rows kept per source for the sample prompts (`samples.count` is at most 16)."""
TOKENIZED_CHUNK = 4096
"""Conversations whose token ids are held as Python lists at once, before they go into Arrow."""


def example_rows(rows: list[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """The first EXAMPLE_ROWS rows as the trainer sees them, before tokenizing."""
    shown = []
    for row in rows[:EXAMPLE_ROWS]:
        if system is not None and isinstance(row.get("messages"), list):
            row = {**row, "messages": _with_system(row["messages"], system)}
        shown.append(convert_row(row, system))
    return shown


def _with_system(turns: list[dict[str, str]], system: str) -> list[dict[str, str]]:
    if turns and turns[0].get("role") == "system":
        return turns
    return [{"role": "system", "content": system}, *turns]


def convert_row(row: dict[str, Any], system: str | None) -> dict[str, Any]:
    """One row in TRL's shape; a system prompt makes string prompts conversational."""
    if system is None:
        return row
    row = dict(row)
    if "prompt" in row:
        row["prompt"] = _with_system(as_turns(row["prompt"], "user"), system)
    for answer in ("completion", "chosen", "rejected"):
        if answer in row:
            row[answer] = as_turns(row[answer], "assistant")
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
        fn_kwargs={"system": system},
        desc="aligntune: converting rows",
    )
    keep = _KEEP.get(fmt)
    if keep is not None:
        drop = [c for c in converted.column_names if c not in keep]
        converted = converted.remove_columns(drop)
    return converted


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


def _which(index: int, turns: list[dict[str, Any]]) -> str:
    """A conversation named so a user can find it: the data is mixed and split by now, so its
    place in the file is gone, but its first words are not."""
    text = next((t["content"] for t in turns if isinstance(t.get("content"), str)), "")
    return f"row {index + 1} (the conversation starting {' '.join(text.split())[:60]!r})"


def _sft_tokenized(rows: list[dict[str, Any]], recipe: Recipe, tokenizer: Any, where: str) -> Any:
    """Conversations as `input_ids` + `labels`, each turn trained or not as aligntune decides;
    into Arrow TOKENIZED_CHUNK conversations at a time (Python's lists of token ids cost tens of
    bytes a token, Arrow's eight), each cut at max_length unless packed."""
    from datasets import Dataset, concatenate_datasets

    algorithm = recipe.algorithm
    user_turns = isinstance(algorithm, SFTAlgorithm) and not algorithm.assistant_only_loss
    system = recipe.data.system_prompt
    # Unpacked rows are cut to their first max_length tokens by the trainer (SFTConfig's
    # truncation_mode keep_start, left alone): the ids past it are never held.
    packed = isinstance(algorithm, SFTAlgorithm) and algorithm.packing
    cut = None if packed else recipe.data.max_length
    chunks: list[Any] = []
    encoded: list[dict[str, list[int]]] = []
    earliest: int | None = None
    for index, row in enumerate(rows):
        turns = row["messages"]
        if system is not None:
            turns = _with_system(turns, system)
        try:
            tokens = tokenize_conversation(tokenizer, turns, row.get("tools"), user_turns)
        except DataError as exc:
            raise DataError(f"{where}: {_which(index, turns)}: {exc}", hint=exc.hint) from None
        start = next((i for i, x in enumerate(tokens["labels"]) if x != IGNORED), 0)
        earliest = start if earliest is None else min(earliest, start)
        encoded.append({key: ids[:cut] for key, ids in tokens.items()})
        if len(encoded) == TOKENIZED_CHUNK:
            chunks.append(Dataset.from_list(encoded))
            encoded = []
    if encoded or not chunks:
        chunks.append(Dataset.from_list(encoded))
    if earliest is not None and earliest >= recipe.data.max_length:
        # The trainer cuts every row at max_length, and a row with nothing left to learn is dropped.
        raise DataError(
            f"{where}: no conversation has a trained token within data.max_length "
            f"{recipe.data.max_length} (the earliest starts at token {earliest})",
            hint="raise data.max_length",
        )
    return chunks[0] if len(chunks) == 1 else concatenate_datasets(chunks)


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
    if conversational(rows):
        rows = [_arrow_safe(row) for row in rows]
    try:
        dataset = Dataset.from_list(rows)
    except Exception as exc:  # pyarrow's errors: the same column with different types
        raise DataError(f"{where}: the rows do not make one table: {exc}") from None
    check_labels(dataset, fmt, where)
    first = rows[0] if rows else {}
    shape = next((s for key, s in _SHAPES if key in first), fmt)
    return prepare(dataset, shape, recipe.data.system_prompt, chat, where)


def load_data(recipe: Recipe, tokenizer: Any) -> PreparedData:
    """The recipe's train and eval data, each source checked against the algorithm's formats,
    mixed, and converted for its trainer."""
    settings = recipe.data
    chat = bool(tokenizer.chat_template)
    fmt, train = read_sources(recipe, settings.train_sources(), chat)
    eval_rows: list[dict[str, Any]] | None = None
    if settings.eval is not None:
        eval_fmt, eval_rows = read_sources(recipe, [("data.eval", settings.eval)], chat)
    elif settings.eval_fraction is not None:
        problem = split_problem(len(train), settings.eval_fraction)
        if problem is not None:  # checked before the run for local data; hub data is read here
            raise DataError(problem, hint=SPLIT_HINT)
        train, eval_rows = split_eval(train, settings.eval_fraction, recipe.training.seed)
        eval_fmt = fmt
    train_data = _dataset(train, fmt, recipe, tokenizer, "data.train")
    eval_data = None
    if eval_rows is not None:
        eval_data = _dataset(eval_rows, eval_fmt, recipe, tokenizer, "data.eval")
    system = settings.system_prompt
    examples = [("training data", example_rows(train, system))]
    if eval_rows is not None:
        examples.insert(0, ("eval split", example_rows(eval_rows, system)))
    return PreparedData(train_data, eval_data, fmt, tuple(examples))


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
