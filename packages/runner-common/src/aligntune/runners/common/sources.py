"""Each data source read into aligntune's row shapes, and several mixed into one by the seed.

A local json or jsonl file is read row by row in Python (as the host check read it), so turns of
any shape reach `aligntune.core.conversations` before Arrow sees them; each row is shaped as it is
read, so the file's decoded rows are never all held at once; csv, parquet and hub data
come through `datasets`. Every row leaves in one of four shapes: `messages` (+ `tools`), a
preference pair (`prompt`, `chosen`, `rejected`, + `tools`), `prompt` + `completion`, or the
format's own columns (`text`; `prompt` and the columns rewards read).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, islice
from pathlib import Path
from typing import Any

from aligntune.core.algorithm_sections import SFTAlgorithm
from aligntune.core.algorithms import get_algorithm
from aligntune.core.conversations import TurnError, read_answer, read_tools, read_turns
from aligntune.core.data import (
    CANONICAL_COLUMNS,
    FORMAT_OPTIONAL,
    LABEL,
    local_kind,
    resolve_format,
    text_with_turns,
)
from aligntune.core.data_check import TurnNames
from aligntune.core.data_readers import read_rows
from aligntune.core.data_rows import Problems
from aligntune.core.errors import DataError
from aligntune.core.mixture import mix, select_rows
from aligntune.core.paths import local_path
from aligntune.core.recipe import Recipe
from aligntune.core.sections import DataSource

Row = dict[str, Any]

_TURN_COLUMNS = ("prompt", "chosen", "rejected", "completion")
"""Columns that hold text or, in conversational data, turns."""


def load_source(source: DataSource, base_dir: Path, where: str) -> Any:
    """One data source as a `datasets.Dataset`, columns renamed, first max_samples rows."""
    from datasets import load_dataset

    local = local_path(source.path, base_dir)
    try:
        if local is not None:
            kind = local_kind(local)
            # pandas reads a column of numbers as numbers; text columns stay the text the host
            # check read ("007" stays "007"), so a prompt of digits is a prompt, not an int.
            text = {source.columns.get(c, c): str for c in CANONICAL_COLUMNS if c != LABEL}
            options = {"converters": text} if kind == "csv" else {}
            dataset = load_dataset(kind, data_files=str(local), split="train", **options)
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


def _raw_rows(source: DataSource, base_dir: Path, where: str) -> Iterator[tuple[str, Row]]:
    """The rows of a source, one at a time, under aligntune's column names, each with where it
    is: `path:line` in a local json or jsonl file, read as the host check read it (the first
    problem ends the rows and, once the file is read, is raised), else `row N`."""
    path = local_path(source.path, base_dir)
    if path is None or local_kind(path) != "json":
        dataset = load_source(source.model_copy(update={"max_samples": None}), base_dir, where)
        for index, row in enumerate(dataset):
            yield f"row {index + 1}", dict(row)
        return
    renamed = {file_name: canonical for canonical, file_name in source.columns.items()}
    problems = Problems(path)
    for line, row in read_rows(path, "json", problems):
        if isinstance(row, dict) and not problems.shown:
            yield f"{path}:{line}", {renamed.get(str(k), str(k)): value for k, value in row.items()}
    if problems.shown:  # checked before the run; a file changed since is named, not guessed at
        raise DataError("\n".join(problems.lines()), hint=problems.hint)


def _turns_or_text(value: Any, names: TurnNames, where: str) -> Any:
    return read_turns(value, names.style("messages"), where) if isinstance(value, list) else value


def shape_row(row: dict[str, Any], fmt: str, names: TurnNames) -> dict[str, Any]:
    """One row of format `fmt` in aligntune's shape; a TurnError says what does not fit."""
    style = names.style(fmt)
    out: dict[str, Any]
    if fmt in ("messages", "sharegpt"):
        column = "messages" if fmt == "messages" else "conversations"
        out = {"messages": read_turns(row[column], style, column)}
    elif fmt == "sharegpt_preference":
        out = {"prompt": read_turns(row["conversations"], style, "conversations")}
        for answer in ("chosen", "rejected"):
            out[answer] = read_answer(row[answer], style, answer)
    elif fmt == "alpaca":
        extra = row.get("input") or ""
        instruction = row["instruction"] + (f"\n\n{extra}" if extra else "")
        out = {"prompt": instruction, "completion": row["output"]}
    elif fmt == "feedback_messages":  # the last (assistant) turn is the rated completion
        turns = read_turns(row["messages"], style, "messages")
        out = _as_feedback({"prompt": turns[:-1], "completion": turns[-1:], LABEL: row[LABEL]})
    elif fmt == "feedback":
        out = {key: _turns_or_text(row[key], names, key) for key in ("prompt", "completion")}
        out = _as_feedback({**out, LABEL: row[LABEL]})
    elif fmt in ("preference", "prompt_completion"):
        out = {key: _turns_or_text(row[key], names, key) for key in _TURN_COLUMNS if key in row}
        if fmt == "preference" and "prompt" in out and out["prompt"] is None:
            del out["prompt"]
    else:
        out = dict(row)
    optional = FORMAT_OPTIONAL.get(fmt, ())
    if "tools" in optional and row.get("tools") is not None:
        out["tools"] = read_tools(row["tools"], "tools")
    if "system" in optional and row.get("system"):  # ShareGPT's system prompt column
        column = "messages" if "messages" in out else "prompt"
        if out[column][0]["role"] != "system":
            out[column] = [{"role": "system", "content": row["system"]}, *out[column]]
    return out


def _as_feedback(row: dict[str, Any]) -> dict[str, Any]:
    """A rated row whose prompt and completion are both text or both turns (text becomes a turn
    when the other is turns), as KTO's unpaired preference takes it."""
    if isinstance(row["prompt"], list) != isinstance(row["completion"], list):
        row["prompt"] = as_turns(row["prompt"], "user")
        row["completion"] = as_turns(row["completion"], "assistant")
    return row


def read_source(
    source: DataSource, base_dir: Path, where: str, accepted: tuple[str, ...], seed: int
) -> tuple[str, list[dict[str, Any]]]:
    """(format, rows in aligntune's shape) of one source, `max_samples` and `weight` applied.
    Each row is shaped as it is read (only the shaped rows are held) and reading stops after
    `max_samples` rows."""
    raw = islice(_raw_rows(source, base_dir, where), source.max_samples)
    first = next(raw, None)
    if first is None:
        raise DataError(f"{where}: {source.path} has no rows")
    fmt = resolve_format(set(first[1]), source.format, accepted, where)
    names = TurnNames(source.fields, source.roles)
    shaped = []
    for at, row in chain([first], raw):
        try:
            shaped.append(shape_row(row, fmt, names))
        except TurnError as exc:
            raise DataError(f"{where}: {at}: {exc.where}: {exc.what}") from None
        except KeyError as exc:
            raise DataError(f"{where}: {at}: {exc.args[0]}: missing") from None
    # max_samples was applied while reading: `shaped` holds the first rows only.
    return fmt, select_rows(shaped, None, source.weight, seed)


def as_turns(value: Any, role: str) -> list[dict[str, str]]:
    """Text as one turn of `role`; turns as they are."""
    return value if isinstance(value, list) else [{"role": role, "content": str(value)}]


def _wrap_turns(row: dict[str, Any], prompt_trained: bool | None) -> dict[str, Any]:
    """A row whose text becomes turns (to sit beside conversations); for SFT (`prompt_trained`
    not None) a prompt/completion row becomes one conversation, its prompt trained or not."""
    out = dict(row)
    if "prompt" in out:
        out["prompt"] = as_turns(out["prompt"], "user")
    for answer in ("completion", "chosen", "rejected"):
        if answer in out:
            out[answer] = as_turns(out[answer], "assistant")
    if prompt_trained is not None and "completion" in out:
        prompt = [{**turn, "train": prompt_trained or None} for turn in out.pop("prompt")]
        out = {"messages": prompt + out.pop("completion"), **out}
    return out


def conversational(rows: list[dict[str, Any]]) -> bool:
    """Whether any row holds turns."""
    return any(
        isinstance(row.get(key), list) for row in rows for key in ("messages", "prompt", "chosen")
    )


def _unified(
    parts: list[tuple[str, list[dict[str, Any]]]], chat: bool, prompt_trained: bool | None
) -> list[list[dict[str, Any]]]:
    """Each source's rows; where the mixture joins conversations with text rows, the text rows
    become turns (and prompt/completion rows conversations) so that all share one shape."""
    formats = {fmt for fmt, _ in parts}
    if len(parts) == 1 or not any(conversational(rows) for _, rows in parts):
        return [rows for _, rows in parts]
    if "text" in formats:
        raise DataError(f"data.train: {text_with_turns(formats)}")
    if not chat:
        raise DataError(
            "data.train: mixing conversations with text rows needs a chat template; "
            "the tokenizer has none (set model.chat_template)"
        )
    return [[_wrap_turns(row, prompt_trained) for row in rows] for _, rows in parts]


def read_sources(
    recipe: Recipe, sources: list[tuple[str, DataSource]], chat: bool
) -> tuple[str, list[dict[str, Any]]]:
    """(format of the first source, the sources' rows unified and mixed)."""
    accepted = get_algorithm(recipe.algorithm.name).data_formats
    seed = recipe.training.seed
    algorithm = recipe.algorithm
    prompt_trained = None  # SFT: whether a prompt/completion row's prompt is trained
    if isinstance(algorithm, SFTAlgorithm):
        prompt_trained = algorithm.completion_only_loss is False
    parts: list[tuple[str, list[dict[str, Any]]]] = []
    for field, source in sources:
        fmt, rows = read_source(source, recipe.base_dir, field, accepted, seed)
        if fmt == "alpaca" and chat:  # instructions become a user turn, outputs an answer
            rows = [_wrap_turns(row, prompt_trained) for row in rows]
        parts.append((fmt, rows))
    return parts[0][0], mix(_unified(parts, chat, prompt_trained), seed)
