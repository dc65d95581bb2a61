"""Dataset formats, format detection, and the host-side preflight of local data files.

The preflight reads only the standard library's json and csv, so the launcher can reject bad data
before any container starts. Parquet files are checked for existence and their magic bytes here;
their columns are checked by the runner, which has pyarrow.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aligntune.core.errors import DataError

CANONICAL_COLUMNS: tuple[str, ...] = (
    "messages",
    "prompt",
    "completion",
    "instruction",
    "input",
    "output",
    "text",
    "chosen",
    "rejected",
)

FORMAT_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "preference": ("chosen", "rejected"),
    "prompt_completion": ("prompt", "completion"),
    "alpaca": ("instruction", "output"),
    "text": ("text",),
    "prompt": ("prompt",),
}
"""The columns each format needs (after the recipe's column mapping)."""

# Most specific first: a preference row also has a prompt, a prompt/completion row a prompt.
_DETECTION_ORDER = ("messages", "preference", "prompt_completion", "alpaca", "text", "prompt")

LOCAL_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
PREVIEW_ROWS = 1000


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
            f"this algorithm needs one of [{needs}]",
            hint="map your columns with data.train.columns, e.g. {prompt: question}",
        )
    return detected


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
    return candidate if candidate.is_absolute() else (base_dir / candidate).resolve()


def local_kind(path: Path) -> str:
    """The loader `datasets` needs for a local file: json, csv or parquet."""
    kind = LOCAL_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unsupported data file type {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(LOCAL_SUFFIXES)}"
        )
    return kind


@dataclass(frozen=True)
class DataPreview:
    """What the preflight learned about one local data file."""

    path: Path
    rows: int
    """Rows read (at most PREVIEW_ROWS)."""
    columns: frozenset[str]
    """Columns after the recipe's mapping; empty for parquet (checked by the runner)."""
    format: str | None


def _json_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, row) for JSON Lines, or for a JSON file holding a list of objects."""
    with path.open(encoding="utf-8") as handle:
        text = handle.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        for row in rows:
            yield 1, row
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno})",
                hint="each line of a .jsonl file must be one JSON object",
            ) from None


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if None in row:
                raise DataError(f"{path}:{reader.line_num}: more values than header columns")
            yield reader.line_num, row


def _read_rows(path: Path, kind: str) -> Iterator[tuple[int, Any]]:
    try:
        yield from (_json_rows(path) if kind == "json" else _csv_rows(path))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None


def preview_local_data(
    path: Path, mapping: Mapping[str, str], declared: str, accepted: tuple[str, ...]
) -> DataPreview:
    """Check a local data file: exists, non-empty, parses, has the columns the algorithm needs."""
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: data file is empty")
    kind = local_kind(path)
    if kind == "parquet":
        with path.open("rb") as handle:
            if handle.read(4) != b"PAR1":
                raise DataError(f"{path}: not a parquet file (no PAR1 header)")
        return DataPreview(path, 0, frozenset(), None)

    renamed = {source: canonical for canonical, source in mapping.items()}
    columns: set[str] | None = None
    rows = 0
    for number, row in _read_rows(path, kind):
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        keys = {renamed.get(str(key), str(key)) for key in row}
        if columns is None:
            columns = keys
        rows += 1
        if {"chosen", "rejected"} <= keys:
            chosen = row[mapping.get("chosen", "chosen")]
            rejected = row[mapping.get("rejected", "rejected")]
            if chosen == rejected:
                raise DataError(
                    f"{path}:{number}: chosen and rejected are identical; "
                    "such a pair carries no preference and trains nothing"
                )
        if rows >= PREVIEW_ROWS:
            break
    if columns is None:
        raise DataError(f"{path}: data file has no rows")
    absent = [
        f"{canonical} -> {source}"
        for canonical, source in mapping.items()
        if canonical not in columns
    ]
    if absent:
        raise DataError(
            f"{path}: mapped column(s) not in the file: {', '.join(absent)}; "
            f"columns found: {', '.join(sorted(columns))}"
        )
    fmt = resolve_format(columns, declared, accepted, str(path))
    return DataPreview(path, rows, frozenset(columns), fmt)
