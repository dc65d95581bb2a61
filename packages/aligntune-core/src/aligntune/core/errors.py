"""The whole aligntune error hierarchy, each error with the exit code the CLI returns for it."""

from __future__ import annotations

from collections.abc import Iterable


class AlignTuneError(Exception):
    """Base of every error aligntune raises on purpose; carries the process exit code."""

    exit_code = 1
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
    """A problem with what the user gave us (recipe, data, model path): exit 1, nothing started."""

    exit_code = 1


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


class UsageError(AlignTuneError):
    """A command used wrongly (bad flag combination): exit 2."""

    exit_code = 2


class BackendUnavailableError(AlignTuneError, ImportError):
    """The requested backend, runtime or image cannot run here: exit 3, says why and what to do.

    An ImportError too, so the Python API's `except ImportError:` fallback pattern (from the
    original AlignTune docs) catches "Unsloth cannot run here" as it catches a missing package.
    """

    exit_code = 3


class RunnerNotInstalledError(BackendUnavailableError):
    """The runner package for the selected backend is not installed in this Python environment."""
