"""Row-by-row checks of local data against its format: each problem as `path:line: field: what`.

A row is checked as the trainers will read it: the format's columns hold non-empty text (or, where
TRL takes conversations, a list of messages), every column keeps one JSON type in every row (the
Arrow table `datasets` builds needs that), and a preference pair differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aligntune.core.conversations import (
    JSON_KINDS,
    TurnError,
    TurnStyle,
    kind_of,
    read_answer,
    read_tools,
    read_turns,
)
from aligntune.core.data import FORMAT_COLUMNS, FORMAT_OPTIONAL, LABEL, TURN_STYLE, detect_format
from aligntune.core.data_feedback import FeedbackRows

MAX_PROBLEMS = 20
"""Problems shown per file; the rest are counted."""

_PLAIN_TEXT = ("alpaca", "text")
"""Formats whose columns are joined as strings; the others may also hold conversations."""

_JOINED = ("prompt_completion", "preference")
"""Formats whose prompt and answers the trainer joins (the feedback formats make text turns)."""
_ANSWERS = ("chosen", "rejected", "completion")
"""Columns holding an answer: as turns, they end with the assistant's."""
_SYSTEM = "system"
_ASSISTANT = "assistant"


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


def plain_turns_test(style: TurnStyle) -> Callable[[Any, bool], bool]:
    """The common case of a column of turns, tested first and fast: a list of turns with a known
    role and non-empty string text and no other keys (with `answer`, the last by the assistant).
    `read_turns` reads everything else and says what is wrong."""
    role_key, content_key = style.role_key, style.content_key
    by_role = [(name, role) for name, role in style.roles.items() if role != "tool_call"]
    names = frozenset(name for name, _ in by_role)
    system = frozenset(name for name, role in by_role if role == _SYSTEM)
    assistant = frozenset(name for name, role in by_role if role == _ASSISTANT)

    def plain(value: Any, answer: bool) -> bool:
        if type(value) is not list or not value:
            return False
        for message in value:
            if type(message) is not dict or len(message) != 2:
                return False
            name, content = message.get(role_key), message.get(content_key)
            if type(name) is not str or name not in names or type(content) is not str:
                return False
            if (not content or content.isspace()) and name not in system:
                return False
        return not answer or value[-1][role_key] in assistant

    return plain


def _first_field(value: Any, bad: Callable[[Any], bool], where: str = "") -> str | None:
    """The field path of the first value inside a decoded value that `bad` flags, or None."""
    if bad(value):
        return where
    if isinstance(value, dict):
        inside = [(f"{where}.{key}".lstrip("."), item) for key, item in value.items()]
    elif isinstance(value, list):
        inside = [(f"{where}[{index}]", item) for index, item in enumerate(value)]
    else:
        return None
    return next((f for path, item in inside if (f := _first_field(item, bad, path))), None)


def nonfinite_field(value: Any) -> str | None:
    """The field path of the first NaN or infinite number inside a decoded value, or None."""
    return _first_field(value, lambda v: isinstance(v, float) and not math.isfinite(v))


def _not_utf8(value: Any) -> bool:
    if not isinstance(value, str) or value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def surrogate_field(value: Any) -> str | None:
    """The field path of the first string holding a lone surrogate (JSON's `\\ud800` escape,
    half of a UTF-16 pair), which no UTF-8 text can hold, or None."""
    return _first_field(value, _not_utf8)


_CONVERSATION, _PROMPT_TURNS, _ANSWER, _TOOLS, _TEXT = range(5)
"""What a column holds: a conversation to train on, the turns before an answer, a ShareGPT
answer (a turn or a list of turns), tool schemas, or text (where allowed, also turns)."""


def _column_kind(fmt: str, canonical: str) -> int:
    if canonical == "tools":
        return _TOOLS
    if LABEL in FORMAT_COLUMNS[fmt] and canonical == "messages":
        return _PROMPT_TURNS  # its last turn is the rated answer: the feedback rules check it
    if canonical == "messages" or (canonical == "conversations" and fmt == "sharegpt"):
        return _CONVERSATION
    if canonical == "conversations":
        return _PROMPT_TURNS
    if fmt == "sharegpt_preference":
        return _ANSWER
    return _TEXT


class RowChecker:
    """Checks every row of one file against the format its first row (or the recipe) set."""

    def __init__(
        self,
        fmt: str,
        origin: str,
        mapping: Mapping[str, str],
        problems: Problems,
        style: TurnStyle | None = None,
    ):
        """`origin` says where the format came from (the recipe, or the first row's line);
        `style` how turns name their parts (default: the format's own)."""
        self.format = fmt
        self.style = style or TurnStyle.of(TURN_STYLE.get(fmt, "messages"), {}, {})
        # (column as the file names it, aligntune's name, what it holds): the format's own
        # columns, checked in every row, and the optional ones, checked where a row has them.
        # A column of turns also says whether one must be the assistant's (None: not turns).
        answers = {_CONVERSATION: True, _PROMPT_TURNS: False}
        self.columns = [
            (mapping.get(c, c), c, kind, answers.get(kind))
            for c in FORMAT_COLUMNS[fmt]
            if c != LABEL  # the feedback rules check it
            for kind in (_column_kind(fmt, c),)
        ]
        self.optional_columns = [
            (mapping.get(c, c), c, _column_kind(fmt, c)) for c in FORMAT_OPTIONAL.get(fmt, ())
        ]
        self.plain = plain_turns_test(self.style)
        self.required = {mapping.get(c, c) for c in FORMAT_COLUMNS[fmt]}
        self.optional = {mapping.get(c, c) for c in FORMAT_OPTIONAL.get(fmt, ())}
        self.renamed = {source: canonical for canonical, source in mapping.items()}
        # A preference pair's two answers (chosen, rejected) must differ.
        paired = "chosen" in FORMAT_COLUMNS[fmt]
        self.pair = tuple(mapping.get(c, c) for c in ("chosen", "rejected")) if paired else ()
        # A preference file's pairs all have a prompt or none do: the trainer's table takes its
        # columns from one row, and a pair without the prompt the others have cannot be trained.
        self.prompt = mapping.get("prompt", "prompt") if fmt == "preference" else None
        # The trainers join a row's prompt and answers: all text, or all turns.
        joined = ("prompt", *_ANSWERS) if fmt in _JOINED else ()
        self.joined = [
            mapping.get(c, c) for c in joined if c in FORMAT_COLUMNS[fmt] or c == "prompt"
        ]
        self.prompted: tuple[int, bool] | None = None
        """(line, whether it has a prompt) of the first row."""
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
        self.gaps: dict[str, int] = {}
        """Each column some row holds null or lacks -> the first such row's line."""
        self.known: set[str] = set()
        """Every column seen so far ..."""
        self.first_line: int | None = None
        """... since the first row's line."""
        self.uses_tools = False
        """Some row has tool schemas (a `tools` column that is not empty)."""
        self.uses_calls = False
        """Some turn calls a tool."""

    def check(self, line: int, row: dict[str, Any]) -> None:
        """Record every problem of one row (a JSON object or a CSV record)."""
        bad: set[str] = set()
        plain = self.plain
        for source, canonical, kind, answer in self.columns:
            value = row.get(source)
            # The common case first, and fast: every row pays for these lines.
            if answer is not None:
                if plain(value, answer):
                    continue
            elif kind == _TEXT and type(value) is str and value and not value.isspace():
                continue
            if source not in row:
                self._missing(line, source, row)
                bad.add(source)
                continue
            self._check_value(line, source, canonical, kind, value, bad)
        if len(row) > len(self.columns):  # only then can a row hold an optional column
            for source, canonical, kind in self.optional_columns:
                if source in row:
                    self._check_value(line, source, canonical, kind, row[source], bad)
        if self.feedback is not None:
            bad |= self.feedback.check(line, row, bad)
        if self.pair and not bad and row[self.pair[0]] == row[self.pair[1]]:
            self.problems.add(
                line,
                "chosen and rejected are identical; such a pair carries no preference "
                "and trains nothing",
            )
        if self.prompt is not None:
            self._check_prompted(line, row.get(self.prompt) is not None)
        if self.joined and not bad:
            self._check_joined(line, row)
        # A column whose JSON type changes stops `datasets` from building its table.
        if row.keys() != self.known:  # rarely: most files give every row the same columns
            self._note_gaps(line, row)
        kinds = self.kinds
        for key, value in row.items():
            kind_name = JSON_KINDS.get(type(value))
            if kind_name is None:  # null, which any column may hold
                self.nulls.add(key)
                self.gaps.setdefault(key, line)
            elif kinds.get(key) != kind_name and key not in bad:
                self._kind_changed(line, key, kind_name)

    def _note_gaps(self, line: int, row: dict[str, Any]) -> None:
        """Record the columns this row lacks, and those it is the first to have."""
        if self.first_line is None:
            self.first_line = line
        for key in self.known - row.keys():
            self.gaps.setdefault(key, line)
        for key in row.keys() - self.known:
            if line != self.first_line:
                self.gaps.setdefault(key, self.first_line)
            self.known.add(key)

    def _check_joined(self, line: int, row: dict[str, Any]) -> None:
        turns = [c for c in self.joined if isinstance(row.get(c), list)]
        text = [c for c in self.joined if isinstance(row.get(c), str)]
        if turns and text:
            self.problems.add(
                line,
                f"{', '.join(text)}: text, but {', '.join(turns)}: turns; the trainer joins a "
                "row's prompt and answers, so they are all text or all turns",
            )

    def _check_prompted(self, line: int, has: bool) -> None:
        if self.prompted is None:
            self.prompted = (line, has)
        elif has != self.prompted[1]:
            first = self.prompted[0]
            what = (
                f"missing here, but line {first} has one"
                if not has
                else (f"set here, but line {first} has none")
            )
            self.problems.add(
                line,
                f"{self.prompt}: {what}; give every pair a prompt, or none (then chosen and "
                "rejected are whole conversations)",
            )

    def _check_value(
        self, line: int, source: str, canonical: str, kind: int, value: Any, bad: set[str]
    ) -> None:
        found = self._value_problem(kind, canonical, source in self.optional, value)
        if found is not None:
            self.problems.add(line, f"{source}{found[0]}: {found[1]}")
            bad.add(source)

    def _turns(self, kind: int, value: Any) -> list[dict[str, Any]]:
        """The turns of a column that holds them, read as the runner reads them."""
        if kind == _ANSWER:
            return read_answer(value, self.style, "")
        turns = read_turns(value, self.style, "")
        if kind == _CONVERSATION and not any(
            t["role"] == _ASSISTANT and t["train"] is not False for t in turns
        ):
            raise TurnError("", "no assistant turn to train on (a conversation needs one)")
        return turns

    def _value_problem(
        self, kind: int, canonical: str, optional: bool, value: Any
    ) -> tuple[str, str] | None:
        """(where inside the value, what is wrong) for one column of a row, or None."""
        try:
            if kind == _TOOLS:
                if value is not None:
                    self.uses_tools = self.uses_tools or bool(read_tools(value))
                return None
            if kind != _TEXT or (isinstance(value, list) and self.format not in _PLAIN_TEXT):
                turns = self._turns(kind, value)
                self.uses_calls = self.uses_calls or any("tool_calls" in t for t in turns)
                if canonical in _ANSWERS and turns[-1]["role"] != _ASSISTANT:
                    role = turns[-1]["role"]
                    return (
                        "",
                        f"the answer ends with a {role} turn; it must end with the assistant's",
                    )
                return None
        except TurnError as exc:
            return exc.where, exc.what
        if value is None:
            return None if optional else ("", "missing (null)")
        if not isinstance(value, str):
            turns_too = "" if self.format in _PLAIN_TEXT else " or a list of messages"
            return "", f"expected a string{turns_too}, got a {kind_of(value)}"
        if not optional and (not value or value.isspace()):
            return "", "empty"
        return None

    @property
    def labels(self) -> bytes | None:
        """Feedback data's label of each row in file order (1: desirable), else None."""
        return self.feedback.labels if self.feedback is not None else None

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

    def canonical_gaps(self) -> dict[str, int]:
        """Each column some row holds null or lacks -> that row's line, under aligntune's names."""
        return {self.renamed.get(key, key): line for key, line in self.gaps.items()}

    def canonical_kinds(self) -> dict[str, str]:
        """Each column's JSON type (where some row holds a value), under aligntune's names."""
        return {self.renamed.get(key, key): kind for key, kind in self.kinds.items()}

    def canonical_columns(self) -> frozenset[str]:
        """Every column seen in the file, under aligntune's names (after the recipe's mapping)."""
        return frozenset(self.renamed.get(key, key) for key in {*self.kinds, *self.nulls})
