"""What a run's container sees of the host: the recipe's folder and each input outside it
(read-only), the run directory and the Hugging Face cache (read-write), and nothing else.

`run_mounts` is the one list: `build_container_spec` mounts it, `validate` and `plan` show it.
Pure: nothing here talks to docker or creates a folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aligntune.core.errors import UserInputError
from aligntune.core.outputdir import check_output, home_problem, output_dir_problem
from aligntune.core.paths import shown_path, system_path_problem
from aligntune.core.recipe import Recipe

CONTAINER_ROOT = "/aligntune"
RECIPE_MOUNT = f"{CONTAINER_ROOT}/recipe"
INPUTS_MOUNT = f"{CONTAINER_ROOT}/inputs"
RUN_MOUNT = f"{CONTAINER_ROOT}/run"
HF_CACHE_MOUNT = f"{CONTAINER_ROOT}/hf-cache"


@dataclass(frozen=True)
class Mount:
    """One bind mount."""

    source: str
    target: str
    read_only: bool = True

    def describe(self) -> str:
        """`SOURCE -> TARGET (read-only)`: one line of what `validate` and `plan` list."""
        access = "read-only" if self.read_only else "read-write"
        return f"{self.source} -> {self.target} ({access})"


def mount_problem(path: Path) -> str | None:
    """Why the host folder or file `path` must not be mounted into a run's container, else None."""
    return system_path_problem(path) or home_problem(path)


class InputMounts:
    """Container paths for a recipe's local references: under the recipe folder's mount, or
    one read-only mount each. Every source is a real path (docker follows links when it
    mounts) and none may expose the host (`mount_problem`)."""

    def __init__(self, recipe_dir: Path) -> None:
        self.recipe_dir = recipe_dir.resolve()
        why = mount_problem(self.recipe_dir)
        if why:
            raise UserInputError(
                f"the recipe's folder {self.recipe_dir} {why}; it is mounted whole into the "
                "run's container",
                hint="keep a recipe and its files in a folder of their own",
            )
        self.mounts: list[Mount] = [Mount(str(self.recipe_dir), RECIPE_MOUNT)]

    def container_path(self, field: str, path: Path) -> str:
        """Where the runner finds the local file or folder at the absolute host `path`."""
        real = path.resolve()
        if real.is_relative_to(self.recipe_dir):
            return f"{RECIPE_MOUNT}/{real.relative_to(self.recipe_dir).as_posix()}".rstrip("/")
        for mount in self.mounts:
            if mount.source == str(real):
                return mount.target
        why = mount_problem(real)
        if why:
            raise UserInputError(
                f"{field}: {shown_path(str(path), real)} {why}; it would be mounted"
            )
        target = f"{INPUTS_MOUNT}/{len(self.mounts)}-{real.name}"
        self.mounts.append(Mount(str(real), target))
        return target

    def references(self, recipe: Recipe) -> dict[str, str]:
        """Each local reference of `recipe` -> its container path (mounted as needed)."""
        local = recipe.local_references()
        return {field: self.container_path(field, path) for field, path in local.items()}


@dataclass(frozen=True)
class RunPaths:
    """The host paths a run uses."""

    recipe_file: Path
    run_dir: Path
    hf_cache: Path


def run_mounts(recipe: Recipe, paths: RunPaths) -> tuple[tuple[Mount, ...], dict[str, str]]:
    """Every mount of a run's container, and each local reference's container path: the
    recipe's folder and each input outside it read-only, the run directory and the Hugging Face
    cache read-write; nothing else of the host."""
    for what, folder in (("run directory", paths.run_dir), ("Hugging Face cache", paths.hf_cache)):
        why = output_dir_problem(folder)
        if why:  # `check_output` named --output already; this guards HF_HOME and every caller
            raise UserInputError(f"the {what} {folder} {why}; it would be mounted read-write")
    inputs = InputMounts(paths.recipe_file.parent)
    references = inputs.references(recipe)
    writable = (
        Mount(str(paths.run_dir.resolve()), RUN_MOUNT, read_only=False),
        Mount(str(paths.hf_cache.resolve()), HF_CACHE_MOUNT, read_only=False),
    )
    for what, mount in zip(("run directory", "Hugging Face cache"), writable, strict=True):
        refuse_writable_input(what, mount, inputs.mounts)
    return (*inputs.mounts, *writable), references


def refuse_writable_input(what: str, writable: Mount, inputs: Sequence[Mount]) -> None:
    """Refuse a read-write mount that is or holds a read-only one: the container could write
    what it must only read."""
    for mount in inputs:
        if Path(mount.source).is_relative_to(writable.source):
            raise UserInputError(
                f"the {what} {writable.source} holds {mount.source}, which the container only "
                "reads; it would be mounted read-write",
                hint="set HF_HOME to a folder of its own"
                if writable.target == HF_CACHE_MOUNT
                else "choose an --output (output.dir) that holds none of the run's inputs",
            )


def hf_cache_path() -> Path:
    """The host's Hugging Face cache, where huggingface_hub looks for it: HF_HOME (`~` and
    `$VARS` expanded, as a quoted value in a shell profile leaves them), else
    $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface."""
    cache = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
    )
    return Path(os.path.expandvars(os.path.expanduser(cache)))


def planned_mounts(recipe: Recipe, recipe_file: Path) -> tuple[Mount, ...]:
    """The mounts `aligntune run` would give this recipe's container (run directory from
    `output.dir`, refused where a run must not write); creates nothing."""
    paths = RunPaths(recipe_file.resolve(), check_output(recipe), hf_cache_path())
    return run_mounts(recipe, paths)[0]
