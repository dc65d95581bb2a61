"""The rules of the feedback formats (KTO's unpaired data), row by row and for the whole file.

A row holds one completion and a boolean `label`: true when the completion is desirable. In
`feedback_messages` rows the completion is the conversation's last turn, which must be the
assistant's. A run's data needs rows of both kinds (the loss compares them): the sources of a
mixture together, not each file (`both_kinds_problem`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aligntune.core.data import LABEL, LOCAL_SUFFIXES

CSV_BOOLEANS = {
    "True": True, "TRUE": True, "true": True, "False": False, "FALSE": False, "false": False,
}  # fmt: skip
"""The CSV spellings `datasets` (through pandas) reads as booleans in a column of only these."""

_KIND = {True: "desirable (label true)", False: "undesirable (label false)"}


def _label_problem(value: Any, csv: bool) -> str | None:
    """What is wrong with one row's label, or None."""
    if type(value) is bool or (csv and value in CSV_BOOLEANS):
        return None
    if csv:
        return f"expected true or false, got {value!r}"
    return f"expected a boolean (true or false, without quotes), got {json.dumps(value)[:40]}"


def _last_turn_problem(turns: list[dict[str, Any]]) -> str | None:
    """A conversation's last turn is the completion the label judges: the assistant's answer."""
    role = turns[-1].get("role")
    if role != "assistant":
        return (
            f"the last message is the completion the label judges, so it must be the "
            f"assistant's; this one's role is {role!r}"
        )
    if len(turns) < 2:
        return "only an assistant message: the completion needs a prompt before it"
    return None


class FeedbackRows:
    """Checks each row's label (and, for conversations, the last turn), counts both kinds."""

    def __init__(
        self,
        fmt: str,
        mapping: Mapping[str, str],
        problems: Any,
        missing: Callable[[int, str, dict[str, Any]], None],
    ) -> None:
        """`problems` is the file's `data_rows.Problems`, `missing(line, column, row)` reports a
        missing column; CSV labels are read as `datasets` reads them."""
        self.label = mapping.get(LABEL, LABEL)
        self.messages = mapping.get("messages", "messages") if fmt == "feedback_messages" else None
        self.csv = LOCAL_SUFFIXES.get(problems.path.suffix.lower()) == "csv"
        self.problems = problems
        self.missing = missing
        self.order = bytearray()
        """Each sound row's label in file order, 1 for desirable."""
        self.first_line: int | None = None

    def check(self, line: int, row: dict[str, Any], bad: set[str]) -> set[str]:
        """Record the problems of one row; the columns found bad (`bad`: already bad ones)."""
        found: set[str] = set()
        if self.first_line is None:
            self.first_line = line
        value = row.get(self.label)
        problem = _label_problem(value, self.csv)
        if self.label not in row:
            self.missing(line, self.label, row)
            found.add(self.label)
        elif problem is not None:
            self.problems.add(line, f"{self.label}: {problem}")
            found.add(self.label)
        else:
            self.order.append(CSV_BOOLEANS[value] if isinstance(value, str) else bool(value))
        if self.messages is not None and self.messages not in bad:
            turn = _last_turn_problem(row[self.messages])
            if turn is not None:
                self.problems.add(line, f"{self.messages}: {turn}")
                found.add(self.messages)
        return found

    @property
    def labels(self) -> bytes:
        """The label of each row whose label is sound, in file order (1: desirable)."""
        return bytes(self.order)


def both_kinds_problem(labels: bytes | list[int], label: str = LABEL) -> str | None:
    """Why data whose rows have these labels (1: desirable) cannot train, or None: the loss
    compares the two kinds, so a run's data (all its sources together) needs both."""
    desirable = sum(labels)
    undesirable = len(labels) - desirable
    if desirable and undesirable:
        return None
    present = desirable > 0
    return (
        f"{label}: all {desirable + undesirable} rows are {_KIND[present]}; the feedback formats "
        f"train on both kinds, so add rows that are {_KIND[not present]}"
    )
