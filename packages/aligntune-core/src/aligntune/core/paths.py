"""The path model: which recipe fields name local files or folders, and how they are re-rooted.

A recipe field marked `PATH_FIELD` holds a reference: a hub id, or a local file or folder relative
to the recipe's folder. `local_path` is the one rule that tells the two apart. `local_references`
lists a recipe's local references as absolute host paths; `with_references` re-roots them: the
runner applies the container paths the launcher hands it (`--reference`), and makes them absolute
for `recipe.resolved.yaml`. A new path field is one marker on it in `recipe.py`.

What a run directory records names every input as the user's host names it, never where a
container reads it: `recorded_names` is that one rule. The launcher hands the runner each local
input's host path (and the host run directory) with `--host-path FIELD=PATH`; a runner started on
the host (or by hand) records its own absolute paths. `recipe.resolved.yaml` is written with these
names, and so are the files in `final/` and the checkpoints that name the base model
(`adapter_config.json`'s `base_model_name_or_path`, the model card's `base_model`). A tool that
reads a run (`aligntune export`) takes the base model from `recipe.resolved.yaml`'s
`model.name_or_path`: a hub id or an absolute host path.

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

from aligntune.core.data import is_local_path, real_path, resolve_local
from aligntune.core.errors import UsageError

if TYPE_CHECKING:
    from aligntune.core.recipe import Recipe


class PathField:
    """The type of the `PATH_FIELD` marker (it carries nothing; its presence is the fact)."""


PATH_FIELD = PathField()
"""`Annotated` metadata on a recipe field that may name a local file or folder."""

REFERENCE_FLAG = "--reference"
"""The runner's option that re-roots one path field, `--reference FIELD=PATH` (repeatable)."""

HOST_PATH_FLAG = "--host-path"
"""The runner's option naming where the user's host has one input, `--host-path FIELD=PATH`
(repeatable; `output.dir` names the host run directory): what the run directory records."""

OUTPUT_FIELD = "output.dir"
"""The field `--host-path` uses for the run directory (not a path field: `--output` sets it)."""

SYSTEM_STATE = ("/dev", "/proc", "/run", "/sys", "/var/run")
"""Kernel and runtime state (devices, process memory and environments, service sockets such as
docker's): no recipe path may name anything inside, nor a folder that holds one of them."""

PATH_RULE = (
    "a recipe path names a regular file or a folder, never a socket, a device, a FIFO or "
    f"anything under {', '.join(SYSTEM_STATE)}"
)

SYMLINK_LOOP = "is a symlink loop: it leads back to itself, so it names no file or folder"
"""What a path is that cannot be resolved because its links lead back to themselves."""

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
    real = real_path(path)
    if real is None:
        return SYMLINK_LOOP
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
    real = real_path(path) or path  # a symlink loop as it is
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


def with_references(
    recipe: Recipe, new: Mapping[str, str], host_paths: Mapping[str, str] | None = None
) -> Recipe:
    """A copy of `recipe` with the path fields named in `new` (`data.train.path`, ...) replaced,
    and the fields the run will not read cleared (they were not mounted: nothing checks them);
    `host_paths` (field -> the user's host path, `output.dir` too) is what the run records.

    Nothing is validated again: a container path need not exist where this runs.
    """
    copy = recipe.model_copy(deep=True)
    for field in unread_references(recipe):
        _set_field(copy, field, None)
    for field, value in new.items():
        _set_field(copy, field, value)
    for field in host_paths or {}:
        if field != OUTPUT_FIELD:
            _path_field_owner(copy, field)
    copy.set_host_paths({**recipe.host_paths, **(host_paths or {})})
    return copy


def _path_field_owner(recipe: Recipe, field: str) -> tuple[Any, str]:
    """The section holding the path field `field` (`data.train.path`) and the field's name."""
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
    return owner, name


def _set_field(recipe: Recipe, field: str, value: str | None) -> None:
    """Set the path field `field` (`data.train.path`) of `recipe` in place."""
    owner, name = _path_field_owner(recipe, field)
    setattr(owner, name, value)


def recorded_names(recipe: Recipe, run_dir: Path) -> dict[str, str]:
    """Each local reference (and `output.dir`) -> how the run directory names it: the host path
    the launcher handed (`--host-path`), else its absolute path where this runs."""
    names = {field: str(path) for field, path in recipe.local_references().items()}
    names[OUTPUT_FIELD] = str(run_dir)
    return {**names, **recipe.host_paths}


def renamed_paths(recipe: Recipe, run_dir: Path) -> dict[str, str]:
    """Where this process reads each input (and the run directory) -> the name a run records,
    for the ones that differ (empty on the host): what files written here must be rewritten by."""
    here = {field: str(path) for field, path in recipe.local_references().items()}
    here[OUTPUT_FIELD] = str(run_dir)
    names = recorded_names(recipe, run_dir)
    return {path: names[field] for field, path in here.items() if names[field] != path}


def recorded_model(recipe: Recipe, run_dir: Path) -> str:
    """The trained model's base as the run directory names it: a hub id or the host path."""
    names = recorded_names(recipe, run_dir)
    return names.get("model.name_or_path", recipe.model.name_or_path)


def resolved_recipe(recipe: Recipe, run_dir: Path) -> Recipe:
    """The recipe a run records: every local reference and output.dir as `recorded_names` says
    (the user's host paths, absolute)."""
    names = recorded_names(recipe, run_dir)
    resolved = recipe.with_references(
        {field: name for field, name in names.items() if field != OUTPUT_FIELD}
    )
    resolved.output.dir = names[OUTPUT_FIELD]
    return resolved


def reference_arguments(
    references: Mapping[str, str], host: Mapping[str, str] | None = None
) -> list[str]:
    """The runner's command-line arguments that hand it re-rooted paths (`--reference F=P` ...)
    and, with `host`, the host paths the run records (`--host-path F=P` ...)."""
    pairs = [(REFERENCE_FLAG, item) for item in references.items()]
    pairs += [(HOST_PATH_FLAG, item) for item in (host or {}).items()]
    return [arg for flag, (field, path) in pairs for arg in (flag, f"{field}={path}")]
