"""The check of every row of a local data file, and the first rows a reward is tried on."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aligntune.core.conversations import TurnField, TurnStyle
from aligntune.core.data import TURN_STYLE, local_kind, resolve_format, rows_used
from aligntune.core.data_readers import read_rows
from aligntune.core.data_rows import Problems, RowChecker, kind_of
from aligntune.core.errors import DataError
from aligntune.core.parquet import parquet_columns
from aligntune.core.paths import local_path
from aligntune.core.sections import DataSource

SAMPLE_ROWS = 4
"""Rows `sample_rows` reads (what a user's reward function is tried on)."""
EDGE_BYTES = 1 << 16
"""A file's identity hashes this many bytes at its start and at its end."""


@dataclass(frozen=True)
class FileIdentity:
    """A file as a check found it, taken before reading it: any write since changes `mtime_ns`,
    and a copy that kept size and mtime (`cp -p`, `rsync -t`) most likely changes `edges`."""

    size: int
    mtime_ns: int
    edges: str
    """sha256 of the first and the last EDGE_BYTES."""


def file_identity(path: Path) -> FileIdentity | None:
    """The identity of a regular file; None for anything else, never opened (a FIFO blocks)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return None
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            digest.update(handle.read(EDGE_BYTES))
            if info.st_size > EDGE_BYTES:
                handle.seek(max(EDGE_BYTES, info.st_size - EDGE_BYTES))
                digest.update(handle.read(EDGE_BYTES))
    except OSError:
        return None
    return FileIdentity(info.st_size, info.st_mtime_ns, digest.hexdigest())


@dataclass(frozen=True)
class DataSummary:
    """What the check learned about one local data file."""

    path: Path
    rows: int
    """Rows in the file."""
    columns: frozenset[str]
    """Every column, under aligntune's names (after the recipe's column mapping)."""
    format: str
    origin: str = "detected"
    """How the format was found: `detected from line N`, `as the recipe declares`, ..."""
    uses_tools: bool = False
    """Some row has tool schemas (a `tools` column)."""
    uses_calls: bool = False
    """Some turn calls a tool."""
    labels: bytes | None = None
    """Feedback data's label of each row in file order (1: desirable)."""
    kinds: Mapping[str, str] = field(default_factory=dict)
    """Each column's JSON type (`string`, `list`, ...) under aligntune's names, where the rows
    were read (none for parquet)."""
    gaps: Mapping[str, int] = field(default_factory=dict)
    """Each column some row holds null or lacks -> the first such row's line."""
    identity: FileIdentity | None = None
    """The file as it was when the check began reading it."""

    def used(self, source: DataSource) -> int:
        """How many rows the run takes from this file as `source` (max_samples, weight)."""
        return rows_used(self.rows, source.max_samples, source.weight)

    def report(self, used: int) -> str:
        """What `validate` says about the file: path, format and how it was found, rows."""
        return f"{self.path}: {self.format} ({self.origin}), {self.rows} rows, {used} used"


@dataclass(frozen=True)
class TurnNames:
    """A source's names for the parts of a turn (the recipe's `fields` and `roles`)."""

    fields: Mapping[TurnField, str]
    roles: Mapping[str, str]

    def style(self, fmt: str) -> TurnStyle:
        """How the turns of a file in format `fmt` name their role, text and roles."""
        return TurnStyle.of(TURN_STYLE.get(fmt, "messages"), self.fields, self.roles)


NO_NAMES = TurnNames({}, {})
"""The turn names of a source that maps none."""


def _resolve_columns(
    path: Path,
    columns: set[str],
    mapping: Mapping[str, str],
    declared: str,
    accepted: tuple[str, ...],
) -> str:
    """The format of a file with these (file-named) columns; a DataError if it has none."""
    absent = [
        f"{canonical} -> {source}" for canonical, source in mapping.items() if source not in columns
    ]
    if absent:
        raise DataError(
            f"{path}: mapped column(s) not in the file: {', '.join(absent)}; "
            f"columns found: {', '.join(sorted(columns))}"
        )
    renamed = {source: canonical for canonical, source in mapping.items()}
    return resolve_format({renamed.get(c, c) for c in columns}, declared, accepted, str(path))


def _checker(
    line: int,
    row: dict[str, Any],
    mapping: Mapping[str, str],
    declared: str,
    accepted: tuple[str, ...],
    problems: Problems,
    names: TurnNames,
) -> RowChecker:
    """The checker for a file whose first row is `row`; earlier problems join a format error."""
    try:
        fmt = _resolve_columns(problems.path, set(row), mapping, declared, accepted)
    except DataError as exc:
        raise DataError("\n".join([*problems.lines(), str(exc)]), hint=exc.hint) from None
    origin = "as the recipe declares" if declared != "auto" else f"detected from line {line}"
    return RowChecker(fmt, origin, mapping, problems, names.style(fmt))


def _check_parquet(
    path: Path, mapping: Mapping[str, str], declared: str, accepted: tuple[str, ...]
) -> DataSummary:
    columns, rows = parquet_columns(path)
    if not rows:
        raise DataError(f"{path}: data file has no rows")
    fmt = _resolve_columns(path, set(columns), mapping, declared, accepted)
    renamed = {source: canonical for canonical, source in mapping.items()}
    canonical = frozenset(renamed.get(c, c) for c in columns)
    origin = "as the recipe declares" if declared != "auto" else "detected from the columns"
    # Parquet's rows are read by the runner: its checks apply there, with the tools it finds.
    return DataSummary(path, rows, canonical, fmt, origin, uses_tools="tools" in canonical)


def _check_rows(
    path: Path,
    kind: str,
    mapping: Mapping[str, str],
    declared: str,
    accepted: tuple[str, ...],
    names: TurnNames,
) -> DataSummary:
    problems = Problems(path)
    checker: RowChecker | None = None
    rows = 0
    for line, row in read_rows(path, kind, problems):
        if not isinstance(row, dict):
            problems.add(line, f"expected a JSON object, got a {kind_of(row)}")
            continue
        if checker is None:
            checker = _checker(line, row, mapping, declared, accepted, problems, names)
        checker.check(line, row)
        rows += 1
    if problems.shown:
        raise DataError("\n".join(problems.lines()), hint=problems.hint)
    if checker is None:
        raise DataError(f"{path}: data file has no rows")
    return DataSummary(
        path,
        rows,
        checker.canonical_columns(),
        checker.format,
        checker.origin,
        checker.uses_tools,
        checker.uses_calls,
        checker.labels,
        checker.canonical_kinds(),
        checker.canonical_gaps(),
    )


def check_local_data(
    path: Path,
    mapping: Mapping[str, str],
    declared: str,
    accepted: tuple[str, ...],
    names: TurnNames = NO_NAMES,
) -> DataSummary:
    """Check every row of a local data file; a DataError names each problem's line and field."""
    if path.is_dir():
        raise DataError(
            f"{path}: a folder, not a data file",
            hint="name one .jsonl, .json, .csv or .parquet file; list several to mix them",
        )
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: data file is empty")
    kind = local_kind(path)
    identity = file_identity(path)  # before reading: a write during the check changes it
    try:
        if kind == "parquet":
            summary = _check_parquet(path, mapping, declared, accepted)
        else:
            summary = _check_rows(path, kind, mapping, declared, accepted, names)
        return replace(summary, identity=identity)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the data file ({exc.strerror or exc})") from None


def sample_rows(source: DataSource, base_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """(`path:line`, row under aligntune's column names) for the first rows of a local json, jsonl
    or csv source; none for hub data and parquet (read without pyarrow here)."""
    path = local_path(source.path, base_dir)
    if path is None or not path.is_file() or local_kind(path) == "parquet":
        return []
    renamed = {source_name: canonical for canonical, source_name in source.columns.items()}
    sample: list[tuple[str, dict[str, Any]]] = []
    with closing(read_rows(path, local_kind(path), Problems(path))) as rows:
        for line, row in rows:
            if isinstance(row, dict):
                sample.append(
                    (f"{path}:{line}", {renamed.get(str(k), str(k)): v for k, v in row.items()})
                )
            if len(sample) == SAMPLE_ROWS:
                break
    return sample
