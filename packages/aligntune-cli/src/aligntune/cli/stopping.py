"""Stopping a run from the terminal: the first Ctrl-C or SIGTERM stops it gracefully (the runner
saves a checkpoint), the second kills it, and a run that overstays its grace time is killed."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

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
