"""When a recipe may resume a run directory's run: the fields an attempt may change, and every
other change said field by field, with its old and new value.

Local inputs (model folder, data files, ...) are compared by what they hold, not where they are:
a run directory copied to another machine, whose recipe and inputs live under another path,
resumes there; a data file edited in place between attempts does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RESUME_MAY_CHANGE = (
    "backend",
    "name",
    "output",
    "training.logging_steps",
    "training.save_steps",
    "training.save_total_limit",
    "training.report_to",
)
"""Recipe fields (and sections) an attempt may change when it resumes: they decide where the run
is, what it logs and which checkpoints it keeps, never what it trains (`backend` asks for one:
the backend a run trained with is compared on its own, from the manifest)."""

_ABSENT = "(not set)"


def leaves(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every value of a recipe tree by its dotted field path (`training.learning_rate`); a list
    of sections by index (`rewards.0.function`), any other list as one value."""
    found: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            found.update(leaves(value, f"{path}."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                found.update(leaves(item, f"{path}.{index}."))
        else:
            found[path] = value
    return found


def _may_change(field: str) -> bool:
    return any(field == name or field.startswith(f"{name}.") for name in RESUME_MAY_CHANGE)


def recipe_changes(
    previous: Mapping[str, Any],
    current: Mapping[str, Any],
    previous_inputs: Mapping[str, str] | None,
    current_inputs: Mapping[str, str],
) -> list[str]:
    """One line per change between the recipe a run started with and this one that makes it a
    different run. `*_inputs` map each local input's field to a digest of its content (None:
    an older run that recorded none, whose inputs are compared by path)."""
    old, new = leaves(previous), leaves(current)
    recorded = previous_inputs or {}
    changes = []
    for field in sorted(old.keys() | new.keys()):
        if _may_change(field):
            continue
        before, after = old.get(field, _ABSENT), new.get(field, _ABSENT)
        if field in current_inputs and field in recorded:
            if recorded[field] != current_inputs[field]:
                where = after if before == after else f"{before}, now {after}"
                changes.append(f"{field}: {where} holds other content than when the run began")
        elif before != after:
            changes.append(f"{field}: was {before}, now {after}")
    return changes
