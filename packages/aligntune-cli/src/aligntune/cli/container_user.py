"""The user a run's container runs as (`--user UID[:GID]`, default the caller's), and the two
folders it writes: the run directory and the Hugging Face cache. A root launcher hands the
folders it made to that user; otherwise a folder that user cannot write is refused before
anything starts, naming the folder, its owner and mode, and the fix."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from aligntune.core.errors import UsageError, UserInputError


@dataclass(frozen=True)
class ContainerUser:
    """A numeric uid and gid (names mean nothing inside the image)."""

    uid: int
    gid: int

    @classmethod
    def parse(cls, value: str | None) -> ContainerUser:
        """`--user`: UID or UID:GID; the caller's when not given."""
        if value is None:
            return cls(os.getuid(), os.getgid())
        match = re.fullmatch(r"(\d+)(?::(\d+))?", value.strip())
        if match is None:
            raise UsageError(f"--user {value!r}: use a numeric UID or UID:GID, e.g. 1000:1000")
        uid = int(match.group(1))
        return cls(uid, int(match.group(2)) if match.group(2) else uid)

    def __str__(self) -> str:
        return f"{self.uid}:{self.gid}"

    def can_write(self, folder: Path) -> bool:
        """Whether this user may create files in `folder`, by its owner, group and mode bits
        (supplementary groups and ACLs aside)."""
        if self.uid == 0:
            return True
        status = folder.stat()
        if status.st_uid == self.uid:
            bits = status.st_mode >> 6
        elif status.st_gid == self.gid:
            bits = status.st_mode >> 3
        else:
            bits = status.st_mode
        return bits & 0o3 == 0o3

    def refuse(self, folder: Path, what: str, fix: str) -> UserInputError:
        """The error for a folder this user cannot write."""
        status = folder.stat()
        return UserInputError(
            f"--user {self}: the container cannot write {what} {folder} (owner "
            f"{status.st_uid}:{status.st_gid}, mode {status.st_mode & 0o777:o})",
            hint=fix,
        )


def cache_for(user: ContainerUser, cache: Path) -> Path:
    """The Hugging Face cache, made for `user` when it does not exist yet, else checked."""
    if cache.exists() and not cache.is_dir():
        raise UserInputError(
            f"the Hugging Face cache {cache} is a file, not a folder",
            hint="set HF_HOME to a folder (aligntune makes it when it does not exist)",
        )
    if not cache.exists():
        try:
            cache.mkdir(parents=True)
        except OSError as exc:
            raise UserInputError(
                f"cannot create the Hugging Face cache {cache}: {exc.strerror}",
                hint="set HF_HOME to a folder you can write",
            ) from None
        _give(cache, user)
    if not user.can_write(cache):
        raise user.refuse(
            cache, "the Hugging Face cache", f"set HF_HOME to a folder that {user} can write"
        )
    return cache


def check_run_directory(user: ContainerUser, run_dir: Path) -> None:
    """Refuse, before anything is made, a run directory `user` could not write: one that exists
    and is not theirs, or one this launcher would make for itself without being root."""
    if run_dir.exists():
        if os.geteuid() != 0 and not user.can_write(run_dir):
            raise user.refuse(
                run_dir, "the run directory", f"choose an --output that {user} can write"
            )
        return
    if os.geteuid() != 0 and user.uid != os.geteuid():
        raise UserInputError(
            f"--user {user}: the run directory {run_dir} would belong to you (uid "
            f"{os.geteuid()}), and the container could not write it",
            hint=f"make it first, writable by {user}, or run aligntune as that user or as root",
        )


def hand_over(user: ContainerUser, run_dir: Path) -> None:
    """A root launcher gives the run directory, which it made or which holds an aligntune run,
    to the container's user, so the run (and a resume as that user) can write all of it."""
    if os.geteuid() != 0 or user.uid == 0:
        return
    _give(run_dir, user)
    for folder, names, files in os.walk(run_dir):
        for name in (*names, *files):
            os.chown(Path(folder) / name, user.uid, user.gid, follow_symlinks=False)


def _give(path: Path, user: ContainerUser) -> None:
    if os.geteuid() == 0 and user.uid != 0:
        shutil.chown(path, user.uid, user.gid)
