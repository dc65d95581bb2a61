"""What the launcher's check of a recipe's local data files hands its runner (plan.json's
`checked_data`): per recipe field, the file's identity when the check began, the settings the
check applied and what it found. A runner started by `aligntune run` then reads only the files
that changed since for its own check; one started without the launcher's plan (by hand, from
Python) checks every file, as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aligntune.core.data_check import DataSummary, FileIdentity, file_identity
from aligntune.core.paths import local_path
from aligntune.core.preflight import data_sources
from aligntune.core.recipe import Recipe
from aligntune.core.sections import DataSource
from aligntune.core.version import VERSION

_AS_DIGITS = bytes.maketrans(b"\0\1", b"01")
_AS_LABELS = bytes.maketrans(b"01", b"\0\1")
"""A feedback file's labels (`DataSummary.labels`, one byte a row) as JSON text and back."""

CHECKED_KEY = "checked_data"
"""plan.json's key for the checked files, beside the plan and `launch`."""


def _settings(source: DataSource, accepted: tuple[str, ...]) -> str:
    """Everything besides the file's bytes that decides the check: the recipe's column mapping,
    declared format, turn names, the formats the algorithm takes, and the rules' version."""
    settings = [VERSION, source.columns, source.format, list(accepted), source.fields, source.roles]
    return json.dumps(settings, sort_keys=True)


def handoff(recipe: Recipe, summaries: Mapping[str, DataSummary]) -> dict[str, Any]:
    """`checked_data` for the files `check_inputs` read: by field, path (as the launcher saw
    it), identity, settings and summary."""
    checked: dict[str, Any] = {}
    for field, source, accepted in data_sources(recipe):
        summary = summaries.get(field)
        if summary is None or summary.identity is None:
            continue
        found = asdict(summary)
        del found["path"], found["identity"]
        found["columns"] = sorted(summary.columns)
        if summary.labels is not None:  # one character a row: "1" desirable, "0" not
            found["labels"] = summary.labels.translate(_AS_DIGITS).decode("ascii")
        checked[field] = {
            "path": str(summary.path),
            "identity": asdict(summary.identity),
            "settings": _settings(source, accepted),
            "found": found,
        }
    return checked


def _vouched(entry: Any, path: Path, settings: str) -> DataSummary | None:
    """The summary `entry` holds for the file at `path`, if the file and settings are the ones
    checked; None for anything else (a malformed entry included: the file is checked again)."""
    try:
        if entry["settings"] != settings:
            return None
        identity = file_identity(path)
        if identity is None or identity != FileIdentity(**entry["identity"]):
            return None
        found = dict(entry["found"])
        labels = found.pop("labels")
        return DataSummary(
            path=path,
            columns=frozenset(found.pop("columns")),
            labels=labels.encode("ascii").translate(_AS_LABELS) if labels is not None else None,
            identity=identity,
            **found,
        )
    except (KeyError, TypeError, ValueError):
        return None


def unchanged(recipe: Recipe, plan: Mapping[str, Any] | None) -> dict[str, DataSummary]:
    """By field, the summaries `plan` (the launcher's, handed over) holds for local data files
    that are still exactly as that check found them, here at their paths in this recipe."""
    checked = (plan or {}).get(CHECKED_KEY)
    if not isinstance(checked, dict):
        return {}
    known = {}
    for field, source, accepted in data_sources(recipe):
        path = local_path(source.path, recipe.base_dir)
        if path is None or field not in checked:
            continue
        summary = _vouched(checked[field], path, _settings(source, accepted))
        if summary is not None:
            known[field] = summary
    return known
