"""A stop delivered twice at once (Slurm signals every process of a job, and each parent passes
the signal on too) is one stop, not the "second signal: stop now" that kills without saving."""

from __future__ import annotations

import os
import signal

from aligntune.runners.common.signals import InterruptRequest


def test_the_same_stop_delivered_twice_is_one_stop() -> None:
    interrupt = InterruptRequest()
    with interrupt.handling_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # the copy a parent passes on, moments later
        assert interrupt.signum == signal.SIGTERM
