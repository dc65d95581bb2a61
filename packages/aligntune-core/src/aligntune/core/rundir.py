"""The run directory contract, shared by the runners (who write it) and the launcher (who reads it).

Layout: .aligntune-run (the marker and lock, see `runlock.py`), plan.json, recipe.resolved.yaml,
manifest.json, trainer_settings.json, events.jsonl, status.json, container.log, error.log (a
runner crash's traceback), checkpoints/, final/.

Every write goes through `write_atomic` or `append_event`: an OS error (a full disk, a read-only
file system, a file where a folder should be) becomes one `RunDirectoryError` naming the path, and
no half-written temporary file stays behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml

from aligntune.core.errors import UserInputError

Status = Literal["running", "finished", "interrupted", "failed"]

MARKER = ".aligntune-run"
"""The file that makes a folder an aligntune run directory; written before anything else."""
PLAN_ENV = "ALIGNTUNE_PLAN"
"""The launcher's plan.json content, handed to the runner, which writes it once it accepts the
run: a run it refuses leaves an existing run directory as it was."""
ERROR_LOG = "error.log"
"""A runner crash's traceback (a worker of rank N > 0 writes error.rankN.log)."""
REFUSED = frozenset({1, 2, 3})
"""Runner exit codes that mean "refused before training" (input, usage, unavailable)."""

_FIXES = {
    errno.ENOSPC: "free space on that disk, or choose another --output",
    errno.EDQUOT: "free space within your quota, or choose another --output",
    errno.EROFS: "that file system is read-only; choose another --output",
    errno.EACCES: "you may not write there; choose another --output",
    errno.EPERM: "you may not write there; choose another --output",
    errno.ENOTDIR: "a file stands where a folder is needed; choose another --output",
    errno.EEXIST: "a file stands where the run directory should be; choose another --output",
}


class RunDirectoryError(UserInputError):
    """The run directory cannot be written: a full disk, a read-only file system, a file in the
    way. Nothing half-written stays behind."""


def disk_error(path: Path, exc: OSError) -> RunDirectoryError:
    """The one-line error for an OS error on `path`, with what to do about it."""
    reason = exc.strerror or str(exc)
    return RunDirectoryError(
        f"cannot write {path}: {reason}", hint=_FIXES.get(exc.errno or 0, "choose another --output")
    )


@contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """Turn an OS error while writing `path` into a `RunDirectoryError` that names it."""
    try:
        yield
    except OSError as exc:
        raise disk_error(path, exc) from None


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename, so readers never see half;
    on failure the temporary file is removed and the old `path` stays as it was."""
    tmp = path.with_name(f".{path.name}.tmp")
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with tmp.open("w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except BaseException:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise


def handed_plan(backend: str, env: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """The plan.json content the launcher handed this runner (`PLAN_ENV`), if made for `backend`."""
    text = env.get(PLAN_ENV)
    if not text:
        return None
    plan = json.loads(text)
    return plan if isinstance(plan, dict) and plan.get("backend") == backend else None


@dataclass
class _HeldFile:
    """events.jsonl's handle while `RunDirectory.holding_events` holds it open."""

    handle: TextIO | None = None


@dataclass(frozen=True)
class RunDirectory:
    """Paths and small readers/writers of one run directory."""

    root: Path
    _events_file: _HeldFile = field(
        default_factory=_HeldFile, init=False, compare=False, repr=False
    )

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.resolved.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def trainer_settings(self) -> Path:
        return self.root / "trainer_settings.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def log(self) -> Path:
        return self.root / "container.log"

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def error_log(self) -> Path:
        return self.root / ERROR_LOG

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def final(self) -> Path:
        return self.root / "final"

    def holds_run(self) -> bool:
        """Whether aligntune made this folder (its marker is there)."""
        return self.marker.is_file()

    def check_usable(self, mode: str) -> None:
        """Refuse, before anything is written, a run directory that cannot be made here (a file in
        the way, a folder you may not write) and a folder aligntune did not make that holds files:
        they are never written over, and --restart never deletes them. Empty folders hold nothing
        to lose (the trainer makes its checkpoint folder before the runner writes anything)."""
        with disk_errors(self.root):
            existing = next(p for p in (self.root, *self.root.parents) if p.exists())
            if not existing.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{existing} is a file")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, f"{existing} is not writable for you")
            if existing != self.root or self.holds_run() or not self._holds_files():
                return
        action = "--restart would delete" if mode == "restart" else "a run would write among"
        raise UserInputError(
            f"{self.root} holds files and is not an aligntune run directory (no {MARKER}); "
            f"{action} files aligntune did not write",
            hint=f"choose a new or empty --output (an older aligntune's run: touch {self.marker})",
        )

    def _holds_files(self) -> bool:
        return any(p.is_symlink() or not p.is_dir() for p in self.root.rglob("*"))

    def create(self) -> Path | None:
        """Make the run directory and its marker; the topmost folder this call made, if any."""
        existing = next(p for p in (self.root, *self.root.parents) if p.exists())
        made = (
            None if existing == self.root else existing / self.root.relative_to(existing).parts[0]
        )
        with disk_errors(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.marker, os.O_WRONLY | os.O_CREAT, 0o644))
        return made

    def discard(self, created: Path | None) -> None:
        """Remove the folder `create` made, when no runner started in it (a refused attempt)."""
        if created is not None and not self.status.exists():
            shutil.rmtree(created, ignore_errors=True)

    def write_json(self, path: Path, data: Any) -> None:
        """Write one of the run directory's JSON files atomically."""
        write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    def read_json(self, path: Path) -> Any:
        """Read one of the run directory's JSON files; None when it does not exist, a
        `RunDirectoryError` naming it when it cannot be read or is not JSON (a damaged copy)."""
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RunDirectoryError(
                f"{path} is damaged: {exc}",
                hint="restore it from where the run directory came from, or start over: "
                "--restart, or another --output",
            ) from None

    def write_recipe(self, data: dict[str, Any]) -> None:
        """Save the resolved recipe (every default spelled out, paths as the runner sees them)."""
        write_atomic(self.recipe, yaml.safe_dump(data, sort_keys=False))

    def append_event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event line to events.jsonl (the only channel the launcher reads)."""
        event = {"event": kind, "time": round(time.time(), 3), **fields}
        line = json.dumps(event, default=_json_number) + "\n"
        held = self._events_file.handle
        with disk_errors(self.events):
            if held is not None:
                held.write(line)
                held.flush()
                return event
            with self._open_events() as handle:
                handle.write(line)
                handle.flush()
        return event

    def _open_events(self) -> TextIO:
        """events.jsonl opened to append. A last line cut short (its writer killed or out of
        disk mid-line) is ended first, so the next event is a line of its own, not glued to the
        broken one and lost with it."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = self.events.open("a", encoding="utf-8")
        if handle.tell() > 0:
            with self.events.open("rb") as raw:
                raw.seek(-1, os.SEEK_END)
                if raw.read(1) != b"\n":
                    handle.write("\n")
        return handle

    @contextmanager
    def holding_events(self) -> Iterator[None]:
        """Keep events.jsonl open while inside (a training loop writes a line per step): every
        event is still flushed as it is written, so the launcher shows it at once and a killed
        process loses none, without opening, creating and closing the file for each one."""
        with disk_errors(self.events):
            handle = self._open_events()
        self._events_file.handle = handle
        try:
            yield
        finally:
            self._events_file.handle = None
            handle.close()

    def read_events(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Complete event lines from byte `offset` on, and the offset after the last one."""
        try:
            with self.events.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        except FileNotFoundError:
            return [], offset
        events = []
        consumed = 0
        for raw in chunk.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break
            consumed += len(raw)
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict):  # a damaged line may still parse: as a list, a number
                events.append(event)
        return events, offset + consumed

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Every complete event written so far."""
        yield from self.read_events()[0]

    def set_status(self, status: Status, **fields: Any) -> None:
        """Record the run's state in status.json."""
        self.write_json(self.status, {"status": status, "time": time.time(), **fields})

    def read_status(self) -> dict[str, Any] | None:
        """status.json, if written."""
        return self.read_json(self.status)

    def last_checkpoint(self) -> dict[str, Any] | None:
        """The newest published checkpoint still on disk, as its `checkpoint` event says."""
        saved = [e for e in self.iter_events() if e.get("event") == "checkpoint" and e.get("path")]
        return next((e for e in reversed(saved) if (self.root / e["path"]).is_dir()), None)

    def reconcile(self) -> dict[str, Any] | None:
        """Record the end of a run whose runner died without saying so (status left "running"):
        interrupted at its last good checkpoint, else failed. Only while holding the run lock,
        so a live runner is never overruled; the new status, or None when nothing was stale."""
        try:
            status = self.read_status()
        except RunDirectoryError:  # damaged (a copy cut short): its run's end is unknown too
            status = {"status": "running"}
        if not status or status.get("status") != "running":
            return None
        why = "the runner ended without recording it (killed, or its machine stopped)"
        checkpoint = self.last_checkpoint()
        fields: dict[str, Any] = (
            {"status": "interrupted", "step": checkpoint["step"], "checkpoint": checkpoint["path"]}
            if checkpoint
            else {"status": "failed", "step": status.get("step", 0), "error": why}
        )
        self.append_event("end", reconciled=why, **fields)
        self.set_status(reconciled=why, **fields)
        return self.read_status()

    def newest_error_log(self, since: float = 0.0) -> Path | None:
        """The crash traceback a runner saved (error.log, error.rankN.log) at or after `since`."""
        logs = [p for p in self.root.glob("error*.log") if p.stat().st_mtime >= since]
        return max(logs, key=lambda p: p.stat().st_mtime, default=None)


def _json_number(value: Any) -> Any:
    """Make numpy/torch scalars and other odd values JSON-friendly."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
