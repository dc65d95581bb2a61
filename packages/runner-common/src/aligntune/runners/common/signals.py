"""Turn SIGTERM/SIGINT into a request the training loop honours at the end of the current step."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class InterruptRequest:
    """Set by a signal handler, read by the training callback after each optimizer step."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signum is not None

    def request(self, signum: int) -> None:
        """Ask the run to stop after this step (what the signal handler calls)."""
        self.signum = signum

    @contextmanager
    def handling_signals(self) -> Iterator[InterruptRequest]:
        """Install the handlers for the duration of training (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: FrameType | None) -> None:
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
