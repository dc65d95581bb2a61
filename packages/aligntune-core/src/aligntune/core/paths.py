"""The path model: which recipe fields name local files or folders, and how they are re-rooted.

A recipe field marked `PATH_FIELD` holds a reference: a hub id, or a local file or folder relative
to the recipe's folder. `local_path` is the one rule that tells the two apart. `local_references`
lists a recipe's local references as absolute host paths; `with_references` re-roots them: the
runner applies the container paths the launcher hands it (`--reference`), and makes them absolute
for `recipe.resolved.yaml`. A new path field is one marker on it in `recipe.py`.

Every local reference must name a regular file or a folder of the user's, never kernel or runtime
state (`unsafe_references`): the launcher mounts each input into the run's container, and a
mounted socket or device (docker's own socket among them) would hand the run the host. A path
field the run will not read (`unread_references`) is neither mounted nor handed to the runner.

`output.dir` is not a reference: it is relative to the current directory, and the launcher or the
runner's `--output` overrides it (`aligntune.core.outputdir` says where a run may write). The
resolved recipe records the run directory actually used.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator, Mapping
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

SYSTEM_STATE = ("/dev", "/proc", "/run", "/sys", "/var/run")
"""Kernel and runtime state (devices, process memory and environments, service sockets such as
docker's): no recipe path may name anything inside, nor a folder that holds one of them."""

PATH_RULE = (
    "a recipe path names a regular file or a folder, never a socket, a device, a FIFO or "
    f"anything under {', '.join(SYSTEM_STATE)}"
)

_SPECIAL_FILES: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def local_path(reference: str, base_dir: Path) -> Path | None:
    """The absolute local file or folder `reference` names, or None when it is a hub id.

    Local when it looks like a path (/, ./, ../, ~, a data file's suffix, two or more slashes) or
    when it exists under `base_dir`: `org/name` is a hub id unless such a folder is there.
    """
    path = resolve_local(reference, base_dir)
    return path if is_local_path(reference) or path.exists() else None


def system_path_problem(path: Path) -> str | None:
    """Why a run must not read or mount `path` ("is inside /proc", "is a socket"), else None.

    Symlinks are followed, as docker follows them when it mounts: a link cannot hide its target.
    """
    real = path.resolve()
    # /var/run is a link to /run on most systems, and /var to /private/var on macOS.
    roots = sorted({r for name in SYSTEM_STATE for r in (Path(name), Path(name).resolve())})
    for root in roots:
        if real.is_relative_to(root):
            return f"is inside {root}"
    for root in roots:
        if root.is_relative_to(real):
            return f"holds {root}"
    try:
        mode = real.stat().st_mode
    except OSError:
        return None  # a missing input is the preflight's to report, in its own words
    return next((f"is {kind}" for test, kind in _SPECIAL_FILES if test(mode)), None)


def shown_path(text: str, path: Path) -> str:
    """`text` as the user wrote it, with the real path it reaches when that differs."""
    real = path.resolve()
    return text if text == str(real) else f"{text} (-> {real})"


def _set_path_fields(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(field path, value) of every path field of `model` and its sections that has a value."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if PATH_FIELD in info.metadata:
            if value is not None:
                yield f"{prefix}{name}", value
        elif isinstance(value, BaseModel):
            yield from _set_path_fields(value, f"{prefix}{name}.")
        elif isinstance(value, list):  # a mixture of data sources: data.train.0.path, ...
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _set_path_fields(item, f"{prefix}{name}.{index}.")


def _local_fields(recipe: Recipe) -> Iterator[tuple[str, str, Path]]:
    """(field, reference, absolute path) of every set path field naming a local file or folder."""
    for field, reference in _set_path_fields(recipe):
        path = local_path(reference, recipe.base_dir)
        if path is not None:
            yield field, reference, path


def local_references(recipe: Recipe) -> dict[str, Path]:
    """Each path field the run reads that names a local file or folder -> its absolute path;
    hub ids and `unread_references` left out."""
    unread = unread_references(recipe)
    return {field: path for field, _, path in _local_fields(recipe) if field not in unread}


def unread_references(recipe: Recipe) -> dict[str, str]:
    """Each set path field the run will not read -> why (never mounted nor given to the runner)."""
    distributed = recipe.distributed
    # runners/common/settings.py hands the config file to TrainingArguments only for DeepSpeed.
    if distributed.config_file is not None and distributed.strategy != "deepspeed":
        return {
            "distributed.config_file": "only strategy deepspeed reads it, and this recipe's "
            f"strategy is {distributed.strategy}"
        }
    return {}


def ignored_field_warnings(recipe: Recipe) -> list[str]:
    """A warning for each path field the run will not read (it is not mounted either)."""
    return [
        f"{field} is ignored and not mounted: {why}"
        for field, why in unread_references(recipe).items()
    ]


def unsafe_references(recipe: Recipe) -> list[str]:
    """A located problem for each local path field (read or not) that names kernel or runtime
    state, a socket, a device or a FIFO, or a folder holding such state; symlinks followed."""
    problems = []
    for field, reference, path in _local_fields(recipe):
        why = system_path_problem(path)
        if why:
            problems.append(f"{field}: {shown_path(reference, path)} {why}; {PATH_RULE}")
    return problems


def with_references(recipe: Recipe, new: Mapping[str, str]) -> Recipe:
    """A copy of `recipe` with the path fields named in `new` (`data.train.path`, ...) replaced,
    and the fields the run will not read cleared (they were not mounted: nothing checks them).

    Nothing is validated again: a container path need not exist where this runs.
    """
    copy = recipe.model_copy(deep=True)
    for field in unread_references(recipe):
        _set_field(copy, field, None)
    for field, value in new.items():
        _set_field(copy, field, value)
    return copy


def _set_field(recipe: Recipe, field: str, value: str | None) -> None:
    """Set the path field `field` (`data.train.path`) of `recipe` in place."""
    *parents, name = field.split(".")
    owner: Any = recipe
    for part in parents:
        if isinstance(owner, list):
            owner = owner[int(part)] if part.isdigit() and int(part) < len(owner) else None
        else:
            owner = getattr(owner, part, None)
    info = type(owner).model_fields.get(name) if isinstance(owner, BaseModel) else None
    if info is None or PATH_FIELD not in info.metadata:
        raise UsageError(f"{field}: not a path field of this recipe")
    setattr(owner, name, value)


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
