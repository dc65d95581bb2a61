"""The path model: which recipe fields name local files or folders, and how they are re-rooted.

A recipe field marked `PATH_FIELD` holds a reference: a hub id, or a local file or folder relative
to the recipe's folder. `local_path` is the one rule that tells the two apart. `local_references`
lists a recipe's local references as absolute host paths; `with_references` re-roots them: the
runner applies the container paths the launcher hands it (`--reference`), and makes them absolute
for `recipe.resolved.yaml`. A new path field is one marker on it in `recipe.py`.

`output.dir` is not a reference: it is relative to the current directory, and the launcher or the
runner's `--output` overrides it. The resolved recipe records the run directory actually used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from aligntune.core.data import is_local_path, resolve_local
from aligntune.core.errors import UsageError

if TYPE_CHECKING:
    from aligntune.core.recipe import Recipe


class PathField:
    """The type of the `PATH_FIELD` marker (it carries nothing; its presence is the fact)."""


PATH_FIELD = PathField()
"""`Annotated` metadata on a recipe field that may name a local file or folder."""

REFERENCE_FLAG = "--reference"
"""The runner's option that re-roots one path field, `--reference FIELD=PATH` (repeatable)."""


def local_path(reference: str, base_dir: Path) -> Path | None:
    """The absolute local file or folder `reference` names, or None when it is a hub id.

    Local when it looks like a path (/, ./, ../, ~, a data file's suffix, two or more slashes) or
    when it exists under `base_dir`: `org/name` is a hub id unless such a folder is there.
    """
    path = resolve_local(reference, base_dir)
    return path if is_local_path(reference) or path.exists() else None


def _set_path_fields(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(field path, value) of every path field of `model` and its sections that has a value."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if PATH_FIELD in info.metadata:
            if value is not None:
                yield f"{prefix}{name}", value
        elif isinstance(value, BaseModel):
            yield from _set_path_fields(value, f"{prefix}{name}.")


def local_references(recipe: Recipe) -> dict[str, Path]:
    """Each path field that names a local file or folder -> its absolute path; hub ids left out."""
    found = {}
    for field, reference in _set_path_fields(recipe):
        path = local_path(reference, recipe.base_dir)
        if path is not None:
            found[field] = path
    return found


def with_references(recipe: Recipe, new: Mapping[str, str]) -> Recipe:
    """A copy of `recipe` with the path fields named in `new` (`data.train.path`, ...) replaced.

    Nothing is validated again: a container path need not exist where this runs.
    """
    copy = recipe.model_copy(deep=True)
    for field, value in new.items():
        *parents, name = field.split(".")
        owner: Any = copy
        for part in parents:
            owner = getattr(owner, part, None)
        info = type(owner).model_fields.get(name) if isinstance(owner, BaseModel) else None
        if info is None or PATH_FIELD not in info.metadata:
            raise UsageError(f"{field}: not a path field of this recipe")
        setattr(owner, name, value)
    return copy


def resolved_recipe(recipe: Recipe, run_dir: Path) -> Recipe:
    """The recipe a run records: every local reference absolute, output.dir the run directory."""
    absolute = {field: str(path) for field, path in recipe.local_references().items()}
    resolved = recipe.with_references(absolute)
    resolved.output.dir = str(run_dir)
    return resolved


def reference_arguments(references: Mapping[str, str]) -> list[str]:
    """The runner's command-line arguments that hand it re-rooted paths (`--reference F=P` ...)."""
    return [
        arg for field, path in references.items() for arg in (REFERENCE_FLAG, f"{field}={path}")
    ]
