"""How the CLI prints an aligntune error: `error:` on the first line, the problems below."""

from __future__ import annotations

import typer

from aligntune.core.errors import AlignTuneError


def echo_error(exc: AlignTuneError) -> None:
    """Print the error's lines to stderr, the first one prefixed with `error: `."""
    for index, line in enumerate(exc.lines):
        typer.echo(f"error: {line}" if index == 0 else line, err=True)
