"""Which rows a run trains and evaluates on, in which order: each source's rows taken and
weighted, the sources mixed, and `eval_fraction`'s rows held out, all drawn by the seed.

The runner applies these to its rows; the host check applies the same functions to what it knows
of each row (a feedback row's label), so a split that would leave the eval or the training data
without rows, or without one kind of label, is refused before anything starts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from aligntune.core.data import rows_used

Row = TypeVar("Row")


def select_rows(
    rows: Sequence[Row], max_samples: int | None, weight: float | None, seed: int
) -> list[Row]:
    """The rows a source gives: its first `max_samples`, times its `weight` (a fraction is a
    seeded sample, a whole part repeats every row)."""
    taken = list(rows if max_samples is None else rows[:max_samples])
    whole, rest = divmod(rows_used(len(rows), max_samples, weight), len(taken))
    return taken * whole + random.Random(seed).sample(taken, rest)


def mix(parts: Sequence[list[Row]], seed: int) -> list[Row]:
    """The sources' rows as one list; several sources are shuffled together by the seed."""
    if len(parts) == 1:
        return parts[0]
    rows = [row for part in parts for row in part]
    random.Random(seed).shuffle(rows)
    return rows


def held_out(rows: int, fraction: float) -> int:
    """How many of `rows` training rows `eval_fraction` holds out for evaluation."""
    return round(rows * fraction)


SPLIT_HINT = "raise data.eval_fraction to hold out more rows, lower it to keep more, or add rows"


def split_problem(rows: int, fraction: float) -> str | None:
    """Why holding out `fraction` of `rows` rows leaves no eval rows or no training rows."""
    held = held_out(rows, fraction)
    if 1 <= held < rows:
        return None
    return (
        f"data.eval_fraction: {fraction} of the {rows} training rows holds out {held} for "
        f"evaluation and leaves {rows - held} to train on; each needs at least one row"
    )


def split_eval(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """(training rows, eval rows): `fraction` of the rows, drawn by the seed, held out."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = held_out(len(rows), fraction)
    return [rows[i] for i in order[held:]], [rows[i] for i in order[:held]]
