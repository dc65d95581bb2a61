"""Errors the runners add to core's hierarchy (each carries its process exit code)."""

from __future__ import annotations

import signal

from aligntune.core.errors import AlignTuneError, ExitCode, signal_exit_code


class TrainingDivergedError(AlignTuneError):
    """A divergence rule stopped the run (`divergence.py`); the last good checkpoint stays."""

    exit_code = ExitCode.DIVERGED

    def __init__(
        self, step: int, what: str, metric: str, checkpoint: str | None, *, hint: str
    ) -> None:
        kept = (
            f"the last good checkpoint is {checkpoint}"
            if checkpoint
            else "no good checkpoint is left"
        )
        super().__init__(f"training diverged at step {step}: {what}; stopped, {kept}", hint=hint)
        self.status_fields = {"reason": "diverged", "metric": metric, "checkpoint": checkpoint}
        """What status.json and the end event add to `error` for a diverged run."""


class RunInterrupted(AlignTuneError):
    """SIGTERM/SIGINT arrived: a checkpoint was saved and the run stopped without final/."""

    def __init__(self, signum: int, checkpoint: str | None) -> None:
        name = signal.Signals(signum).name
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (nothing trained yet)"
        super().__init__(f"interrupted by {name}; saved {where}; run again to resume")
        self.signum = signum
        self.checkpoint = checkpoint
        self.exit_code = signal_exit_code(signum)
