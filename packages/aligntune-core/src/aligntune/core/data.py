"""Dataset formats, format detection, and which references name local data files.

The check of a local file's every row is `aligntune.core.data_files`; the rules a row must follow
are `aligntune.core.data_rows`.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path

from aligntune.core.algorithms import ALGORITHMS
from aligntune.core.errors import DataError

CANONICAL_COLUMNS: tuple[str, ...] = (
    "messages",
    "conversations",
    "system",
    "tools",
    "prompt",
    "completion",
    "instruction",
    "input",
    "output",
    "text",
    "chosen",
    "rejected",
    "label",
)

FORMAT_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "preference": ("chosen", "rejected"),
    "sharegpt_preference": ("conversations", "chosen", "rejected"),
    "feedback": ("prompt", "completion", "label"),
    "feedback_messages": ("messages", "label"),
    "prompt_completion": ("prompt", "completion"),
    "alpaca": ("instruction", "output"),
    "text": ("text",),
    "prompt": ("prompt",),
}
"""The columns each format needs (after the recipe's column mapping). The feedback formats are
KTO's unpaired data: a completion (or a conversation's last assistant turn) and a boolean `label`,
true when the completion is desirable."""

LABEL = "label"
"""The feedback formats' column that says whether a completion is desirable."""

FORMAT_OPTIONAL: Mapping[str, tuple[str, ...]] = {
    "messages": ("tools",),
    "sharegpt": ("system", "tools"),
    "alpaca": ("input",),
    "preference": ("prompt", "tools"),
    "sharegpt_preference": ("system", "tools"),
}
"""Columns a format may have besides FORMAT_COLUMNS, checked when present."""

TURN_STYLE: Mapping[str, str] = {
    "messages": "messages",
    "sharegpt": "sharegpt",
    "preference": "messages",
    "sharegpt_preference": "sharegpt",
}
"""The turn style (`aligntune.core.conversations.TURN_FIELDS`) of each format holding turns."""

CONVERSATION_FORMATS = frozenset(
    {"messages", "sharegpt", "sharegpt_preference", "feedback_messages"}
)
"""Formats whose rows are always conversations (the others may hold text or turns)."""


def text_with_turns(formats: Collection[str]) -> str:
    """Why a mixture cannot join plain text rows with conversations."""
    return (
        "plain text cannot be mixed with conversations; "
        f"the mixture has {', '.join(sorted(formats))}"
    )


# Most specific first: a preference row also has a prompt, a prompt/completion row a prompt.
_DETECTION_ORDER = (
    "sharegpt_preference",
    "feedback_messages",
    "messages",
    "sharegpt",
    "preference",
    "feedback",
    "prompt_completion",
    "alpaca",
    "text",
    "prompt",
)

LOCAL_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def detect_format(columns: set[str], accepted: tuple[str, ...]) -> str | None:
    """The first accepted format whose columns are all present, most specific first."""
    for name in _DETECTION_ORDER:
        if name in accepted and set(FORMAT_COLUMNS[name]) <= columns:
            return name
    return None


def resolve_format(columns: set[str], declared: str, accepted: tuple[str, ...], where: str) -> str:
    """The dataset's format: the declared one checked, or the detected one; else a DataError."""
    found = ", ".join(sorted(columns)) or "none"
    if declared != "auto":
        if declared not in accepted:
            raise DataError(
                f"{where}: format {declared!r} cannot train this algorithm; "
                f"accepted formats: {', '.join(accepted)}"
            )
        missing = [c for c in FORMAT_COLUMNS[declared] if c not in columns]
        if missing:
            raise DataError(
                f"{where}: format {declared!r} needs column(s) {', '.join(missing)}; "
                f"columns found: {found}",
                hint="map your columns with data.train.columns, e.g. {prompt: question}",
            )
        return declared
    detected = detect_format(columns, accepted)
    if detected is None:
        needs = "; ".join(f"{f}: {', '.join(FORMAT_COLUMNS[f])}" for f in accepted)
        raise DataError(
            f"{where}: cannot tell the data format; columns found: {found}; "
            f"this algorithm needs one of [{needs}]{_trained_by(columns)}",
            hint="map your columns with data.train.columns, e.g. {prompt: question}",
        )
    _check_not_rated(columns, detected, where)
    return detected


def rows_used(rows: int, max_samples: int | None, weight: float | None) -> int:
    """How many rows a source gives the run: its first `max_samples`, times its `weight` (a
    fraction takes a seeded sample, a whole part repeats every row)."""
    taken = rows if max_samples is None else min(rows, max_samples)
    return taken if weight is None else max(1, round(taken * weight))


def _check_not_rated(columns: set[str], detected: str, where: str) -> None:
    """Feedback rows read as plain completions would train the undesirable ones too."""
    rated = detect_format(columns, tuple(FORMAT_COLUMNS))
    if rated is None or LABEL not in FORMAT_COLUMNS[rated] or LABEL in FORMAT_COLUMNS[detected]:
        return
    raise DataError(
        f"{where}: the {LABEL} column rates each completion{_trained_by(columns)}; read as "
        f"{detected} data, every completion would be trained on, the undesirable ones too",
        hint=f"to train on every row anyway, declare the data source's format: {detected}",
    )


def _trained_by(columns: set[str]) -> str:
    """What else the columns are: "; these columns are FORMAT data, which ALGORITHM trains"."""
    other = detect_format(columns, tuple(FORMAT_COLUMNS))
    users = [a.name for a in ALGORITHMS if other in a.data_formats]
    if not users:
        return ""
    verb = "trains" if len(users) == 1 else "train"
    return f"; these columns are {other} data, which {', '.join(users)} {verb}"


def is_local_path(path: str) -> bool:
    """Whether a model or data reference names a local path rather than a hub id."""
    return (
        path.startswith(("/", "./", "../", "~"))
        or Path(path).suffix.lower() in LOCAL_SUFFIXES
        or path.count("/") > 1
    )


def resolve_local(path: str, base_dir: Path) -> Path:
    """A local reference made absolute against `base_dir` (the recipe's folder)."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    # A symlink loop stays as written: `paths.system_path_problem` names it.
    return real_path(base_dir / candidate) or Path(os.path.abspath(base_dir / candidate))


def real_path(path: Path) -> Path | None:
    """`path` with every symlink followed; None for a symlink loop (ELOOP, a RuntimeError before
    Python 3.13)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


def local_kind(path: Path) -> str:
    """The loader `datasets` needs for a local file: json, csv or parquet."""
    kind = LOCAL_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unsupported data file type {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(LOCAL_SUFFIXES)}",
            hint="decompress a compressed file first (gunzip FILE), or convert it to JSON Lines",
        )
    return kind
