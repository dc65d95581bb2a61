"""Stopping a run from the terminal: the first Ctrl-C or SIGTERM stops it gracefully (the runner
saves a checkpoint), the second kills it, and a run that overstays its grace time is killed.
Nothing else stops it: a closed output (`aligntune run ... | head -1`) only silences the
launcher."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, TextIO

import typer

from aligntune.cli import launch


class StopOnSignal:
    """First Ctrl-C/SIGTERM: stop gracefully (checkpoint); second: kill at once.

    Installed before the run starts, so a signal that arrives while the container is being
    created is not lost: it is applied as soon as the handle exists.
    """

    def __init__(self, grace_s: float) -> None:
        self.handle: launch.RunHandle | None = None
        self.grace_s = grace_s
        self.signum: int | None = None
        self.kills = 0
        self.deadline: float | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def attach(self, handle: launch.RunHandle) -> None:
        """The run has started: pass on whatever was asked before."""
        self.handle = handle
        if self.kills:
            handle.kill()
        elif self.signum is not None:
            handle.stop()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            self.deadline = time.monotonic() + self.grace_s
            typer.echo("\nstopping: the runner saves a checkpoint (Ctrl-C again to kill)", err=True)
            if self.handle is not None:
                self.handle.stop()
        else:
            self.kills += 1
            typer.echo("killing the run now (no checkpoint)", err=True)
            if self.handle is not None:
                self.handle.kill()

    def check_deadline(self) -> None:
        """Kill a run that did not stop within its grace time."""
        if self.handle and self.deadline is not None and time.monotonic() > self.deadline:
            typer.echo(f"the run did not stop within {self.grace_s:.0f} s; killing it", err=True)
            self.handle.kill()
            self.deadline = None


class _DropWhenClosed(io.TextIOBase):
    """A text stream that, once its reader has gone (EPIPE), drops what is written to it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        """Write through; after a broken pipe, discard."""
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self._silence()
        return len(text)

    def flush(self) -> None:
        """Flush through; after a broken pipe, nothing to do."""
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._silence()

    def _silence(self) -> None:
        # Point the descriptor at /dev/null: later writes (the interpreter's last flush
        # included) succeed instead of raising again.
        with suppress(OSError, ValueError, io.UnsupportedOperation):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)

    def isatty(self) -> bool:
        """Whether the underlying stream is a terminal."""
        return self.stream.isatty()

    def fileno(self) -> int:
        """The underlying descriptor."""
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The underlying stream's encoding."""
        return self.stream.encoding


@contextmanager
def survive_closed_output() -> Iterator[None]:
    """Keep following the run when stdout or stderr goes away (a pipe whose reader ended): the
    launcher goes on silently instead of dying, which would stop a local run or leave a
    container behind mid-step."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _DropWhenClosed(sys.stdout), _DropWhenClosed(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
