"""Checkpoints you can trust: published atomically, validated before resuming, rotated safely.

The trainer writes `checkpoint-N` under `checkpoints/.staging/`. Only once it is complete does the
runner record every file's size in a marker, fsync everything, rename the folder into
`checkpoints/` and point `checkpoints/LATEST` at it. A crash mid-save therefore leaves only
staging debris, never a `checkpoint-N` that a resume would trip over.

That publication runs on a background thread (`Publisher`): the fsyncs wait for the disk to
write everything the trainer just saved (gigabytes for a full fine-tune), and the next training
steps need none of it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from aligntune.core.rundir import disk_error, write_atomic

MARKER = "aligntune_checkpoint.json"
LATEST = "LATEST"
STAGING = ".staging"
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class Skipped:
    """A checkpoint folder that resume passed over, and why."""

    path: Path
    reason: str


def staging_dir(checkpoints: Path) -> Path:
    """Where the trainer writes checkpoints before they are published."""
    return checkpoints / STAGING


def fsync(path: Path) -> None:
    """Make a file's data, or a folder's entries (a rename into it), durable."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_durable(folder: Path) -> None:
    """fsync every file under `folder`, then each folder, deepest first: once renamed into place,
    it survives a crash of the machine whole."""
    found = list(folder.rglob("*"))
    for path in found:
        if path.is_file():
            fsync(path)
    for parent in sorted({p.parent for p in found} | {folder}, reverse=True):
        fsync(parent)


def publish(staged: Path, checkpoints: Path, step: int) -> Path:
    """Mark `staged` complete, make it durable, rename it into `checkpoints/`, update LATEST."""
    files = {
        str(f.relative_to(staged)): f.stat().st_size
        for f in sorted(staged.rglob("*"))
        if f.is_file()
    }
    marker = {"step": step, "files": files}
    (staged / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True), encoding="utf-8")
    make_durable(staged)
    target = checkpoints / staged.name
    if target.exists():
        # A previous attempt at this step (e.g. before a crash and resume): replace it whole.
        shutil.rmtree(target)
    staged.rename(target)
    fsync(checkpoints)
    write_atomic(checkpoints / LATEST, f"{target.name}\n")
    return target


class Publisher:
    """Publishes checkpoints one at a time on a background thread, in step order, and rotates
    after each. Whoever needs a checkpoint to be published (the next save, a stop, the end of
    the run, a divergence withdrawing checkpoints) calls `wait`, which also raises whatever the
    publication raised (a full disk)."""

    def __init__(self, checkpoints: Path, keep: int) -> None:
        self.checkpoints = checkpoints
        self.keep = keep
        self._thread: threading.Thread | None = None
        self._published: Path | None = None
        self._error: BaseException | None = None

    def start(self, staged: Path, step: int) -> None:
        """Publish `staged` as `step` once the previous publication is done."""
        self.wait()
        self._thread = threading.Thread(
            target=self._publish, args=(staged, step), name="aligntune-publish"
        )
        self._thread.start()

    def _publish(self, staged: Path, step: int) -> None:
        try:
            self._published = publish(staged, self.checkpoints, step)
            rotate(self.checkpoints, self.keep)
        except BaseException as exc:  # handed to the training thread by wait()
            self._error = exc

    @property
    def done(self) -> bool:
        """Whether a publication has ended that `wait` has not collected yet."""
        return self._thread is not None and not self._thread.is_alive()

    def wait(self) -> Path | None:
        """The checkpoint published since the last call (None if none), once it is durable."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        published, self._published = self._published, None
        error, self._error = self._error, None
        if error is not None:
            raise error
        return published


def check_complete(path: Path) -> str | None:
    """None when `path` is a complete checkpoint, else why it is not."""
    match = _NAME.match(path.name)
    if match is None:
        return "not named checkpoint-<step>"
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {MARKER} (the save did not finish)"
    except (OSError, ValueError) as exc:
        return f"unreadable {MARKER} ({exc})"
    if marker.get("step") != int(match.group(1)):
        return f"{MARKER} says step {marker.get('step')}, the folder says {match.group(1)}"
    for name, size in marker.get("files", {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes, expected {size}"
    if "trainer_state.json" not in marker.get("files", {}):
        return "no trainer_state.json"
    return None


def _by_step(checkpoints: Path) -> list[Path]:
    if not checkpoints.is_dir():
        return []
    found = [p for p in checkpoints.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)), reverse=True)  # type: ignore[union-attr]


def newest_complete(checkpoints: Path) -> tuple[Path | None, list[Skipped]]:
    """The newest complete checkpoint, and the newer ones skipped with the reason."""
    skipped: list[Skipped] = []
    for path in _by_step(checkpoints):
        reason = check_complete(path)
        if reason is None:
            return path, skipped
        skipped.append(Skipped(path, reason))
    return None, skipped


def rotate(checkpoints: Path, keep: int) -> list[Path]:
    """Delete the oldest complete checkpoints beyond `keep`, and incomplete ones older than the
    newest complete one (a rotation cut short by a kill: nothing can resume from them, and they
    would hold their space for good); the newest complete one is never deleted."""
    found = _by_step(checkpoints)
    complete = [p for p in found if check_complete(p) is None]
    if not complete:
        return []
    broken = [p for p in found if p not in complete and step_of(p) < step_of(complete[0])]
    doomed = complete[max(1, keep) :] + broken
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


FULL_DISK_FREE_BYTES = 16 << 20
"""Free space below which a save that failed is taken for a full disk (torch reports ENOSPC
while writing a checkpoint as `RuntimeError: ... unexpected pos`, without the errno)."""


def abandon_write(folder: Path, target: Path, exc: BaseException) -> BaseException:
    """After a failure while `folder` (a save on its way to `target`) was written: remove it (it
    may be what filled the disk, and the run's end must still be recorded), and when the disk is
    full say so, naming `target`, instead of the writer's own error. Else `exc` itself."""
    full = shutil.disk_usage(folder.parent).free < FULL_DISK_FREE_BYTES  # before freeing it
    shutil.rmtree(folder, ignore_errors=True)
    if not full and not (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        return exc
    return disk_error(target, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))


def abandon_save(checkpoints: Path, exc: BaseException) -> BaseException:
    """After a failure during training: `abandon_write` for a save the trainer had begun in
    staging, if any (the error then names its checkpoint). Else `exc` itself."""
    begun = sorted(staging_dir(checkpoints).glob("checkpoint-*"))
    if not begun:
        return exc
    return abandon_write(staging_dir(checkpoints), checkpoints / begun[-1].name, exc)


def clear_staging(checkpoints: Path) -> None:
    """Remove half-written saves left by an earlier crash (they were never published)."""
    shutil.rmtree(staging_dir(checkpoints), ignore_errors=True)


def step_of(path: Path) -> int:
    """The step number in a checkpoint folder's name."""
    match = _NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint folder")
    return int(match.group(1))
