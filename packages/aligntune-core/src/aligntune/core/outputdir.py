"""Where a run may write: its run directory is the one folder of the user's that the run's
container mounts read-write (besides the Hugging Face cache), so it must be a folder of its own.

`check_output` is the one rule; the launcher (`aligntune run`, `validate`, `plan`) and the
runner's own command line both call it before anything is created.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from aligntune.core.data import real_path
from aligntune.core.errors import UserInputError
from aligntune.core.paths import SYMLINK_LOOP, shown_path, system_path_problem

if TYPE_CHECKING:
    from aligntune.core.recipe import Recipe

SYSTEM_FOLDERS = ("/bin", "/boot", "/etc", "/sbin", "/usr", "/var")
"""Folders of the operating system (besides `/lib*` and `paths.SYSTEM_STATE`) a run never writes."""


def home_folder() -> Path | None:
    """The user's home folder (HOME), or None where there is none (a container's nameless user)."""
    home = os.environ.get("HOME")
    return Path(home).resolve() if home else None


def home_problem(path: Path) -> str | None:
    """Why `path` must not be mounted: it is the user's home or holds it (where keys, tokens and
    some docker sockets live), else None."""
    home, real = home_folder(), path.resolve()
    if home is None or not home.is_relative_to(real):
        return None
    return "is your home folder" if real == home else f"holds your home folder {home}"


def _system_folders(root: Path) -> set[Path]:
    """The system folders as named and as reached through links (merged /usr: /lib64 is a link
    to /usr/lib64)."""
    named = [*map(Path, SYSTEM_FOLDERS), *root.glob("lib*")]
    return {path for folder in named for path in (folder, folder.resolve())}


def output_dir_problem(path: Path) -> str | None:
    """Why a run must not write into `path` (symlinks followed), else None."""
    real = real_path(path)
    if real is None:
        return SYMLINK_LOOP
    root = Path(real.anchor)
    if real == root:
        return "is the root folder"
    if real in _system_folders(root) or (real.parent == root and real.name.startswith("lib")):
        return "is a system folder"
    why = home_problem(real) or system_path_problem(real)
    if why:
        return why
    try:
        is_file = real.exists() and not real.is_dir()
    except OSError:  # a name too long for the filesystem: claiming the folder says so
        return None
    return "is an existing file, not a folder" if is_file else None


def check_output(recipe: Recipe, output: str | Path | None = None) -> Path:
    """The run directory `recipe.run_dir(output)`; a UserInputError naming `--output` or
    `output.dir` where a run must not write."""
    run_dir = recipe.run_dir(output)
    why = output_dir_problem(run_dir)
    if why is None:
        return run_dir
    source = "--output" if output else "output.dir" if recipe.output.dir else "the run directory"
    given = str(output or recipe.output.dir or run_dir)
    raise UserInputError(
        f"{source}: {shown_path(given, run_dir)} {why}; the run directory is the folder a run "
        "writes (mounted read-write into its container), so it must be a folder of its own",
        hint=f"use a new folder, e.g. --output runs/{recipe.run_name}",
    )
