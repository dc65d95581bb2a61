"""How the CLI prints an aligntune error (core's `error_lines`, through typer like its output),
and how it writes a file it generates (a job script, manifests) without losing the user's."""

from __future__ import annotations

from pathlib import Path

import typer

from aligntune.core.errors import AlignTuneError, UserInputError, error_lines
from aligntune.core.rundir import write_atomic


def echo_error(exc: AlignTuneError, *, default_hint: str | None = None) -> None:
    """Print the error's `error:` and `hint:` lines to stderr (see `error_lines`)."""
    typer.echo("\n".join(error_lines(exc, default_hint=default_hint)), err=True)


def write_generated(path: Path, text: str, *, force: bool, inputs: tuple[Path, ...]) -> None:
    """Write a generated file at `path`: never over one of the command's `inputs` (the recipe),
    over an existing file only with `force`, never over a folder; one clean line otherwise."""
    target = path.resolve()
    if target.is_dir():
        raise UserInputError(f"--output {path} is a folder", hint="give a file name")
    if any(target == given.resolve() for given in inputs):
        raise UserInputError(
            f"--output {path} is the recipe itself; it would be overwritten",
            hint="choose another --output",
        )
    if target.exists() and not force:
        raise UserInputError(
            f"--output {path} already exists", hint="choose another --output, or add --force"
        )
    if not target.parent.is_dir():
        raise UserInputError(
            f"--output {path}: the folder {path.parent} does not exist",
            hint="create it first, or choose another --output",
        )
    write_atomic(target, text)
