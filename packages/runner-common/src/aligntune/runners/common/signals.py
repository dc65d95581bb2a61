"""Turn SIGTERM/SIGINT into a request the training loop honours at the end of the current step."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

REPEAT_WINDOW_S = 2.0
"""A scheduler (Slurm) signals every process of a job at once, and each parent passes the signal
on too: a signal this soon after the first is the same stop, delivered twice, not a second one."""


class InterruptRequest:
    """Set by a signal handler, read by the training callback after each optimizer step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.requested_at = 0.0

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signum is not None

    def clear(self) -> None:
        """Forget an earlier request (a new attempt starts)."""
        self.signum = None
        self.requested_at = 0.0

    def request(self, signum: int) -> None:
        """Ask the run to stop after this step (what the signal handler calls)."""
        self.signum = signum
        self.requested_at = time.monotonic()

    @contextmanager
    def handling_signals(self) -> Iterator[InterruptRequest]:
        """Install the handlers for the duration of training (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.requested and time.monotonic() - self.requested_at < REPEAT_WINDOW_S:
                return
            if self.requested:
                # A second signal means "stop now": fall back to the default behaviour.
                signal.signal(signum, previous.get(signum, signal.SIG_DFL))
                signal.raise_signal(signum)
                return
            self.request(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handler)
        try:
            yield self
        finally:
            for restored, old in previous.items():
                signal.signal(restored, old)
