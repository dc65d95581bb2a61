"""Errors the runners add to core's hierarchy (each carries its process exit code)."""

from __future__ import annotations

import signal

from aligntune.core.errors import AlignTuneError, ExitCode, signal_exit_code


class TrainingDivergedError(AlignTuneError):
    """The loss (or a weight) became NaN or infinite: the run stops, older checkpoints stay."""

    exit_code = ExitCode.DIVERGED


class RunInterrupted(AlignTuneError):
    """SIGTERM/SIGINT arrived: a checkpoint was saved and the run stopped without final/."""

    def __init__(self, signum: int, checkpoint: str | None) -> None:
        name = signal.Signals(signum).name
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (nothing trained yet)"
        super().__init__(f"interrupted by {name}; saved {where}; run again to resume")
        self.signum = signum
        self.checkpoint = checkpoint
        self.exit_code = signal_exit_code(signum)


class ResumeRefused(AlignTuneError):
    """The run directory holds a different run: resuming it would mix two recipes."""

    exit_code = ExitCode.USER_INPUT
