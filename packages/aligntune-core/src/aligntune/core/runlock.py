"""One run directory, one run: an advisory lock on the run directory's marker (`flock`).

The lock is held for the whole run and released by the operating system when its holder dies,
however it dies: a lock that is free means nobody is training there. Whoever holds it records
who they are in the marker (pid, host, command, container), so a refused launch can say who.

- `aligntune run --runtime docker`: the launcher holds it on the host while it follows the
  container, and tells the runner so (`LOCK_ENV=host`).
- `aligntune run --runtime local`: the launcher takes it and hands the runner its descriptor
  (`LOCK_ENV=fd:N`); the runner keeps it, so the lock outlives a killed launcher until the
  runner has saved its checkpoint and stopped.
- a runner started by hand takes it itself.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any

from aligntune.core.errors import UsageError
from aligntune.core.rundir import RunDirectory, disk_errors

LOCK_ENV = "ALIGNTUNE_RUN_LOCK"
"""Set by a launcher that holds the lock for the runner it starts: `fd:N` or `host`."""
HELD_ON_HOST = "host"


class RunDirectoryInUse(UsageError):
    """Another launch or runner is training in this run directory."""


def holder_record(**extra: Any) -> dict[str, Any]:
    """Who takes the lock: this process, its host and command line, and `extra` (a container)."""
    command = shlex.join([os.path.basename(sys.argv[0]), *sys.argv[1:]])
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:300]}
    return {**record, "since": round(time.time()), **extra}


def describe_holder(record: dict[str, Any]) -> str:
    """`pid 1234 on node-a (aligntune run sft.yaml), container aligntune-sft-...`."""
    if not record:
        return "another process"
    text = f"pid {record.get('pid')} on {record.get('host')} ({record.get('command')})"
    if record.get("container"):
        text += f", container {record['container']}"
    return text


class RunLock:
    """The exclusive lock on one run directory; `release` (or the holder's death) frees it."""

    def __init__(self, run_dir: RunDirectory) -> None:
        self.run_dir = run_dir
        self.fd: int | None = None

    def acquire(self, record: dict[str, Any]) -> RunLock:
        """Take the lock on the marker and record `record` in it, or refuse naming the holder."""
        with disk_errors(self.run_dir.marker):
            fd = os.open(self.run_dir.marker, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_record(fd)
            os.close(fd)
            raise RunDirectoryInUse(
                f"{self.run_dir.root} is in use: {describe_holder(holder)} is training there",
                hint="wait for that run to end, or stop it; use another --output to train "
                "something else meanwhile",
            ) from None
        self.fd = fd
        try:
            self.record(record)
        except BaseException:
            self.release()
            raise
        return self

    def adopt(self, env: Mapping[str, str] = os.environ) -> bool:
        """Keep the lock a launcher handed this process (`LOCK_ENV`); False when none was."""
        value = env.get(LOCK_ENV, "")
        if value == HELD_ON_HOST:
            return True
        if not value.startswith("fd:") or not value[3:].isdigit():
            return False
        fd = int(value[3:])
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.run_dir.marker))
            # The launcher's own lock: flock on the inherited descriptor succeeds at once.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        if not same:
            return False
        self.fd = fd
        self.record(holder_record(launched_by=_read_record(fd).get("pid")))
        return True

    def record(self, record: dict[str, Any]) -> None:
        """Say in the marker who holds the lock now."""
        assert self.fd is not None
        data = (json.dumps(record, sort_keys=True) + "\n").encode()
        with disk_errors(self.run_dir.marker):
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        """Let go of the lock (a child that inherited the descriptor keeps it until it ends)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _read_record(fd: int) -> dict[str, Any]:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
