"""Row-by-row checks of local data against its format: each problem as `path:line: field: what`.

A row is checked as the trainers will read it: the format's columns hold non-empty text (or, where
TRL takes conversations, a list of messages), every column keeps one JSON type in every row (the
Arrow table `datasets` builds needs that), and a preference pair differs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aligntune.core.data import FORMAT_COLUMNS, LABEL, detect_format
from aligntune.core.data_feedback import FeedbackRows

MAX_PROBLEMS = 20
"""Problems shown per file; the rest are counted."""

ROLES = ("assistant", "system", "tool", "user")
"""The message roles chat templates know."""

_OPTIONAL = {"alpaca": ("input",), "preference": ("prompt",)}
"""Columns a format may have besides FORMAT_COLUMNS, checked when present."""

_PLAIN_TEXT = ("alpaca", "text")
"""Formats whose columns are joined as strings; the others may also hold conversations."""

_KINDS = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "object",
}
"""The JSON type of each type `json` decodes to (null aside), as Arrow names them."""

_ROLES = frozenset(ROLES)
_SYSTEM = "system"


def kind_of(value: Any) -> str:
    """The JSON type of a decoded value: string, number, boolean, list, object, null."""
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


class Problems:
    """The problems found in one file: the first MAX_PROBLEMS in full, then a count of the rest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown: list[tuple[int, str]] = []
        self.more = 0
        self.hint: str | None = None

    def add(self, line: int | None, what: str) -> None:
        """Record one problem at `line` (None: the whole file)."""
        if len(self.shown) < MAX_PROBLEMS:
            where = "" if line is None else f":{line}"
            self.shown.append((line or 0, f"{self.path}{where}: {what}"))
        else:
            self.more += 1

    def lines(self) -> list[str]:
        """What to show: each problem in the order of the file, then how many more there were."""
        more = [f"{self.path}: {self.more} more problem(s) not shown"] if self.more else []
        return [text for _, text in sorted(self.shown, key=lambda shown: shown[0])] + more


def _plain_turns(value: Any) -> bool:
    """Whether `value` is a list of messages with known roles and non-empty string content: the
    common case, tested first and fast; `_turns_problem` says what else it is."""
    if type(value) is not list or not value:
        return False
    for message in value:
        if type(message) is not dict:
            return False
        role, content = message.get("role"), message.get("content")
        if type(role) is not str or role not in _ROLES or type(content) is not str:
            return False
        if (not content or content.isspace()) and role != _SYSTEM:
            return False
    return True


def _turns_problem(value: Any) -> tuple[str, str] | None:
    """(where inside the value, what is wrong) for a list of chat messages, or None."""
    if _plain_turns(value):
        return None
    if value is None:
        return "", "missing (null)"
    if not isinstance(value, list):
        return "", f"expected a list of messages, got a {kind_of(value)}"
    if not value:
        return "", "empty list of messages"
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            return f"[{index}]", f"expected a message object, got a {kind_of(message)}"
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str):
            got = "missing" if role is None else f"a {kind_of(role)}, not a string"
            return f"[{index}].role", got
        if role not in ROLES:
            return f"[{index}].role", f"unknown role {role!r}; valid roles: {', '.join(ROLES)}"
        # A call to a tool may come without text, and an empty system prompt is no prompt.
        calls = bool(message.get("tool_calls"))
        if content is None and not calls:
            return f"[{index}].content", "missing (null)"
        if content is not None and not isinstance(content, str):
            return f"[{index}].content", f"expected a string, got a {kind_of(content)}"
        if not (calls or role == _SYSTEM) and (not content or content.isspace()):
            return f"[{index}].content", "empty"
    return None


def _value_problem(fmt: str, canonical: str, value: Any) -> tuple[str, str] | None:
    """(where inside the value, what is wrong) for one column of a row in format `fmt`, or None."""
    if canonical == "messages" or (isinstance(value, list) and fmt not in _PLAIN_TEXT):
        return _turns_problem(value)
    optional = canonical in _OPTIONAL.get(fmt, ())
    if value is None:
        return None if optional else ("", "missing (null)")
    if not isinstance(value, str):
        turns = "" if fmt in _PLAIN_TEXT else " or a list of messages"
        return "", f"expected a string{turns}, got a {kind_of(value)}"
    if not optional and (not value or value.isspace()):
        return "", "empty"
    return None


def nonfinite_field(value: Any, where: str = "") -> str | None:
    """The field path of the first NaN or infinite number inside a decoded value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, dict):
        inside = [(f"{where}.{key}".lstrip("."), item) for key, item in value.items()]
    elif isinstance(value, list):
        inside = [(f"{where}[{index}]", item) for index, item in enumerate(value)]
    else:
        return None
    return next((f for path, item in inside if (f := nonfinite_field(item, path))), None)


class RowChecker:
    """Checks every row of one file against the format its first row (or the recipe) set."""

    def __init__(self, fmt: str, origin: str, mapping: Mapping[str, str], problems: Problems):
        """`origin` says where the format came from (the recipe, or the first row's line)."""
        self.format = fmt
        wanted = (*FORMAT_COLUMNS[fmt], *_OPTIONAL.get(fmt, ()))
        # (column as the file names it, aligntune's name, whether it holds messages only)
        self.columns = [(mapping.get(c, c), c, c == "messages") for c in wanted if c != LABEL]
        self.required = {mapping.get(c, c) for c in FORMAT_COLUMNS[fmt]}
        self.renamed = {source: canonical for canonical, source in mapping.items()}
        # A preference pair's two answers (chosen, rejected) must differ.
        self.pair: tuple[str, ...] = tuple(self.required) if fmt == "preference" else ()
        self.origin = origin
        self.problems = problems
        self.feedback = (
            FeedbackRows(fmt, mapping, problems, self._missing)
            if LABEL in FORMAT_COLUMNS[fmt]
            else None
        )
        """The label (and last-turn) rules of the feedback formats."""
        self.kinds: dict[str, str] = {}
        """Each column's JSON type, from the first row where it is not null ..."""
        self.kind_lines: dict[str, int] = {}
        """... and that row's line."""
        self.nulls: set[str] = set()
        """Columns seen holding null."""

    def check(self, line: int, row: dict[str, Any]) -> None:
        """Record every problem of one row (a JSON object or a CSV record)."""
        bad: set[str] = set()
        for source, canonical, turns in self.columns:
            value = row.get(source)
            # The common case first, and fast: every row pays for these lines.
            if turns:
                if _plain_turns(value):
                    continue
            elif type(value) is str and value and not value.isspace():
                continue
            if source not in row:
                if source in self.required:
                    self._missing(line, source, row)
                    bad.add(source)
                continue
            found = _value_problem(self.format, canonical, value)
            if found is not None:
                self.problems.add(line, f"{source}{found[0]}: {found[1]}")
                bad.add(source)
        if self.feedback is not None:
            bad |= self.feedback.check(line, row, bad)
        if self.pair and not bad and row[self.pair[0]] == row[self.pair[1]]:
            self.problems.add(
                line,
                "chosen and rejected are identical; such a pair carries no preference "
                "and trains nothing",
            )
        # A column whose JSON type changes stops `datasets` from building its table.
        kinds = self.kinds
        for key, value in row.items():
            kind = _KINDS.get(type(value))
            if kind is None:  # null, which any column may hold
                self.nulls.add(key)
            elif kinds.get(key) != kind and key not in bad:
                self._kind_changed(line, key, kind)

    def finish(self) -> None:
        """After the last row: the rules about the whole file."""
        if self.feedback is not None:
            self.feedback.finish()

    def _missing(self, line: int, source: str, row: dict[str, Any]) -> None:
        names = {self.renamed.get(key, key) for key in row}
        other = detect_format(names, tuple(FORMAT_COLUMNS))
        looks = f"; this row looks like {other} data" if other and other != self.format else ""
        self.problems.add(
            line,
            f"{source}: missing; the file is {self.format} data ({self.origin}), "
            f"whose rows need {', '.join(sorted(self.required))}{looks}",
        )

    def _kind_changed(self, line: int, key: str, kind: str) -> None:
        first = self.kinds.get(key)
        if first is None:
            self.kinds[key], self.kind_lines[key] = kind, line
        else:
            self.problems.add(
                line,
                f"{key}: a {kind} here but a {first} in line {self.kind_lines[key]}; "
                "a column holds one type in every row",
            )

    def canonical_columns(self) -> frozenset[str]:
        """Every column seen in the file, under aligntune's names (after the recipe's mapping)."""
        return frozenset(self.renamed.get(key, key) for key in {*self.kinds, *self.nulls})
