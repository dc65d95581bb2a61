"""The runner as a host process (--runtime local): its handle, and its tie to the launcher."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from aligntune.core.errors import signal_exit_code


class ProcessRun:
    """The runner as a host subprocess (--runtime local)."""

    def __init__(self, process: subprocess.Popen[bytes], log: Any) -> None:
        self.process = process
        self._log = log
        self.description = f"process {process.pid}"

    def poll(self) -> int | None:
        """The exit code, as a shell reports it (128 + signal for a killed process)."""
        code = self.process.poll()
        return signal_exit_code(-code) if code is not None and code < 0 else code

    def stop(self) -> None:
        """Send SIGTERM."""
        self._send(signal.SIGTERM)

    def kill(self) -> None:
        """Send SIGKILL."""
        self._send(signal.SIGKILL)

    def _send(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def close(self) -> None:
        """Close the log file."""
        self._log.close()


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies (Linux)


def stop_when_parent_dies(parent: int) -> Callable[[], None] | None:
    """For the child: SIGTERM when the launcher dies, even by SIGKILL, so it saves and stops."""
    if not sys.platform.startswith("linux"):
        return None

    def arrange() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the launcher died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange
