"""The launcher's hold on a run directory for one launch.

Made if new and locked (`aligntune.core.runlock`) before a runner starts, held until it has ended.
A status left "running" by a runner that died is settled first. When the runner refuses the run
before training (exit 1-3, status.json untouched), the directory is left as it was: a folder this
launch made is removed, and the log of an existing run loses the refused attempt's lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aligntune.core.rundir import REFUSED, RunDirectory
from aligntune.core.runlock import RunLock


@dataclass(frozen=True)
class FileState:
    """A file's size and times, to tell whether it changed and to put them back."""

    size: int
    times: tuple[int, int]

    @classmethod
    def of(cls, path: Path) -> FileState | None:
        """The state of `path`; None when it does not exist."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return cls(stat.st_size, (stat.st_atime_ns, stat.st_mtime_ns))


class LaunchClaim:
    """This launch's run directory: made, locked (node 0 of a job; a single node is node 0),
    and restored after a refused attempt."""

    def __init__(self, run_dir: RunDirectory, record: dict[str, Any], lock: bool = True) -> None:
        self.run_dir = run_dir
        self.record = record
        self.lock = RunLock(run_dir) if lock else None
        self.created: Path | None = None
        self.before: dict[Path, FileState | None] | None = None
        """The log, status and folder as they were before this launch started a runner."""
        self.log_offset = 0

    def __enter__(self) -> LaunchClaim:
        self.created = self.run_dir.create()
        try:
            if self.lock is not None:
                self.lock.acquire(self.record)
        except BaseException:
            self.run_dir.discard(self.created)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self.before is None:  # refused before any runner started
            self.run_dir.discard(self.created)
        if self.lock is not None:
            self.lock.release()

    @property
    def lock_fd(self) -> int | None:
        """The lock's descriptor, for a local runner to inherit and keep."""
        return self.lock.fd if self.lock is not None else None

    def new_attempt(self) -> None:
        """Just before a new runner starts: settle a stale status, note what a refusal restores."""
        if self.lock is not None:
            self.run_dir.reconcile()
        paths = (self.run_dir.log, self.run_dir.status, self.run_dir.root)
        self.before = {path: FileState.of(path) for path in paths}
        self.following()

    def following(self) -> None:
        """From here on, the runner's output in the log is this launch's."""
        state = FileState.of(self.run_dir.log)
        self.log_offset = state.size if state else 0

    def output(self, lines: int = 25) -> list[str]:
        """The last lines the runner wrote to the log during this launch."""
        try:
            with self.run_dir.log.open("rb") as log:
                log.seek(self.log_offset)
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return text.rstrip().splitlines()[-lines:]

    def finish(self, code: int) -> bool:
        """After the runner ended: undo a refused attempt (True), else settle a status that a
        killed runner left "running" (False)."""
        before = self.before
        # A runner that wrote status.json had started: its status says how it ended.
        untouched = (
            before is not None and FileState.of(self.run_dir.status) == before[self.run_dir.status]
        )
        if before is None or code not in REFUSED or not untouched:
            if self.lock is not None:
                self.run_dir.reconcile()
            return False
        if self.created is not None:
            self.run_dir.discard(self.created)
            return True
        log, root = before[self.run_dir.log], before[self.run_dir.root]
        if log is None:
            self.run_dir.log.unlink(missing_ok=True)
        else:
            os.truncate(self.run_dir.log, log.size)
            os.utime(self.run_dir.log, ns=log.times)
        if root is not None:
            os.utime(self.run_dir.root, ns=root.times)
        return True
