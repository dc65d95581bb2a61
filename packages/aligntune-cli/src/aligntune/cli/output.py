"""How the CLI prints an aligntune error: core's `error_lines`, through typer like its output."""

from __future__ import annotations

import typer

from aligntune.core.errors import AlignTuneError, error_lines


def echo_error(exc: AlignTuneError, *, default_hint: str | None = None) -> None:
    """Print the error's `error:` and `hint:` lines to stderr (see `error_lines`)."""
    typer.echo("\n".join(error_lines(exc, default_hint=default_hint)), err=True)
