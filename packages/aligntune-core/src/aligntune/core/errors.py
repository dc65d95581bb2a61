"""The whole aligntune error hierarchy, each error with the exit code the CLI returns for it,
the exit codes themselves, and the one way an error is printed (`error:` lines, then `hint:`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

DEBUG_ENV = "ALIGNTUNE_DEBUG"
"""Set to 1 to see the traceback behind a known error (the launcher and the runners)."""


class ExitCode(enum.IntEnum):
    """Every exit code the launcher (`aligntune`) and the runners return; the docs list these."""

    OK = 0
    """The command did what it was asked."""
    USER_INPUT = 1
    """A bad recipe, data file or model reference; nothing was started or written."""
    USAGE = 2
    """A command used wrongly (a bad flag or flag combination)."""
    UNAVAILABLE = 3
    """The backend, runtime, image or GPU cannot run here (or the nodes did not meet)."""
    DIVERGED = 4
    """Training diverged (a NaN, infinite or exploding loss, no reward, broken weights); the last
    good checkpoint stays."""
    CRASH = 70
    """A failure inside the runner (EX_SOFTWARE): one line; the traceback is in error.log."""
    INTERRUPTED_SIGINT = 130
    """Stopped by SIGINT (Ctrl-C) after saving a checkpoint (the shell's 128 + 2)."""
    INTERRUPTED_SIGTERM = 143
    """Stopped by SIGTERM (docker stop) after saving a checkpoint (the shell's 128 + 15)."""


def signal_exit_code(signum: int) -> int:
    """The exit code a shell reports for a process ended by `signum`: 128 + signum.

    SIGINT and SIGTERM give the ExitCode members; other signals (SIGKILL: 137) give plain ints.
    """
    code = 128 + signum
    try:
        return ExitCode(code)
    except ValueError:
        return code


class AlignTuneError(Exception):
    """Base of every error aligntune raises on purpose; carries the process exit code."""

    exit_code: int = ExitCode.USER_INPUT
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def lines(self) -> list[str]:
        """The message as the lines a person should read, without the hint."""
        return str(self).splitlines()


class UserInputError(AlignTuneError):
    """A problem with what the user gave us (recipe, data, model path); nothing started."""

    exit_code = ExitCode.USER_INPUT


class RecipeError(UserInputError):
    """A recipe that cannot be loaded or validated; lists every problem as `field.path: message`."""

    def __init__(self, source: str, problems: Iterable[str], *, hint: str | None = None) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]), hint=hint)


class DataError(UserInputError):
    """A dataset that cannot be used for the recipe's algorithm (file, line, columns)."""


class ModelError(UserInputError):
    """A model reference that cannot be resolved (missing folder, no config.json)."""


class ResumeRefused(AlignTuneError):
    """The run directory holds a different run: resuming it would mix two recipes."""

    exit_code = ExitCode.USER_INPUT


class UsageError(AlignTuneError):
    """A command used wrongly (bad flag combination)."""

    exit_code = ExitCode.USAGE


class BackendUnavailableError(AlignTuneError, ImportError):
    """The requested backend, runtime or image cannot run here; says why and what to do.

    An ImportError too, so the Python API's `except ImportError:` fallback pattern (from the
    original AlignTune docs) catches "Unsloth cannot run here" as it catches a missing package.
    """

    exit_code = ExitCode.UNAVAILABLE


class RunnerNotInstalledError(BackendUnavailableError):
    """The runner package for the selected backend is not installed in this Python environment."""


def error_lines(exc: AlignTuneError, *, default_hint: str | None = None) -> list[str]:
    """How every aligntune command prints a known error: the lines a person reads, on stderr.

    Each line of the message is one `error: ` line, except an indented line, which details the
    one above (a RecipeError's problems) and stays as it is. Then one `hint: ` line: the error's
    own hint, else `default_hint`, else none.
    """
    lines = [line if line[:1].isspace() else f"error: {line}" for line in exc.lines]
    hint = exc.hint or default_hint
    return [*lines, f"hint: {hint}"] if hint else lines
