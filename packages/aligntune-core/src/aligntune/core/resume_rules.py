"""When a recipe may resume a run directory's run: the fields an attempt may change, and every
other change said field by field, with its old and new value.

Local inputs (model folder, data files, ...) are compared by what they hold, not where they are:
a run directory copied to another machine, whose recipe and inputs live under another path,
resumes there; a data file edited in place between attempts does not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from aligntune.core.errors import ResumeRefused
from aligntune.core.paths import resolved_recipe
from aligntune.core.recipe import Recipe
from aligntune.core.rundir import RunDirectory

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


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_digest(path: Path) -> str:
    """What a local input holds, for telling a moved input from a changed one: a file's sha256;
    for a folder (a model), the sha256 of each file's relative name and size (its weights are
    not read again)."""
    if path.is_file():
        return f"sha256:{file_sha256(path)}"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}\0{file.stat().st_size}\n".encode())
    return f"files:{digest.hexdigest()}"


def input_digests(recipe: Recipe) -> dict[str, str]:
    """Each local input's field (`data.train.path`) -> `content_digest` of what it names."""
    return {field: content_digest(path) for field, path in recipe.local_references().items()}


def recipe_fingerprint(resolved: dict[str, Any], backend: str) -> str:
    """sha256 of what decides the run's result: the resolved recipe (minus output) and backend."""
    relevant = {k: v for k, v in resolved.items() if k != "output"}
    text = json.dumps({"recipe": relevant, "backend": backend}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def different_run(
    run_dir: RunDirectory,
    manifest: dict[str, Any] | None,
    resolved: dict[str, Any],
    backend: str,
    inputs: Mapping[str, str],
) -> str | None:
    """Why this recipe (`resolved`, on `backend`, its local inputs' digests) is not the run
    `run_dir` holds (its `manifest`), or None: the same run, or no run yet."""
    if manifest is None:
        return None
    if manifest.get("backend") != backend:
        return f"it was trained with backend {manifest.get('backend')!r}, this is {backend!r}"
    try:
        previous = yaml.safe_load(run_dir.recipe.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if not isinstance(previous, dict):
        if manifest.get("recipe_sha256") == recipe_fingerprint(resolved, backend):
            return None
        return f"its recipe differs from this one ({run_dir.recipe.name} is unreadable)"
    changes = recipe_changes(previous, resolved, manifest.get("inputs"), inputs)
    if not changes:
        return None
    return "this recipe changes what it trains:\n" + "\n".join(f"  {c}" for c in changes)


def refuse_a_different_run(recipe: Recipe, run_dir: RunDirectory, backend: str) -> None:
    """Raise ResumeRefused when `run_dir` holds a run of another recipe: what the runner checks
    before it resumes, checked by the launcher before any container or runner starts."""
    manifest = run_dir.read_json(run_dir.manifest)
    if manifest is None:
        return
    resolved = resolved_recipe(recipe, run_dir.root).to_yaml_dict()
    refusal = different_run(run_dir, manifest, resolved, backend, input_digests(recipe))
    if refusal:
        raise refused(run_dir, refusal)


def refused(run_dir: RunDirectory, refusal: str) -> ResumeRefused:
    """The error for a run directory that holds a different run, with the ways out."""
    return ResumeRefused(
        f"{run_dir.root} holds a different run: {refusal}",
        hint=f"resume with the recipe it began with ({run_dir.recipe.name} there), use "
        "another --output, or --restart to start this directory over",
    )
