"""The one TrainerCallback that connects a TRL trainer to the run directory.

It writes the events the launcher reads, publishes checkpoints atomically, stops on a non-finite
loss before anything bad is saved, and turns a signal into "save this step, then stop".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from aligntune.core.algorithms import get_algorithm
from aligntune.core.rundir import RunDirectory
from aligntune.runners.common import checkpoints, distributed
from aligntune.runners.common.errors import RunInterrupted, TrainingDivergedError
from aligntune.runners.common.signals import InterruptRequest

_RENAMES = {"lr": "learning_rate"}
"""Log keys every trainer may use that events spell otherwise (PPOTrainer logs `lr`)."""
_SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second")
_WATCHED = ("loss", "reward", "eval_loss")


def clean_number(value: Any) -> Any:
    """JSON-safe metric: floats stay floats, NaN/inf become None, tensors become numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def event_fields(logs: dict[str, Any], algorithm: str) -> dict[str, Any]:
    """A trainer's log dict with aligntune's names for loss, learning_rate and reward."""
    renames = {**_RENAMES, **get_algorithm(algorithm).log_renames}
    return {renames.get(key, key): clean_number(value) for key, value in logs.items()}


class RunDirectoryCallback(TrainerCallback):
    """Events, atomic checkpoints, the non-finite guard and graceful interruption."""

    def __init__(
        self,
        run_dir: RunDirectory,
        algorithm: str,
        interrupt: InterruptRequest,
        keep: int,
        start_fields: dict[str, Any],
    ) -> None:
        self.run_dir = run_dir
        self.algorithm = algorithm
        self.interrupt = interrupt
        self.keep = keep
        self.start_fields = start_fields
        self.last_checkpoint: Path | None = None
        self.last_logs: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Announce the run with its total number of optimizer steps."""
        self.run_dir.append_event(
            "start",
            total_steps=state.max_steps,
            step=state.global_step,
            **self.start_fields,
            **distributed.start_fields(kwargs.get("train_dataloader")),
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """After a step: if a stop was requested, make the trainer save this step now."""
        if distributed.agree_to_stop(self.interrupt):
            control.should_save = True

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        """Write a `log` or `eval` event; stop on a non-finite loss before it is saved."""
        logs = dict(logs or {})
        if any(key in logs for key in _SUMMARY_KEYS):
            self.summary.update({k: clean_number(v) for k, v in logs.items()})
            return
        fields = event_fields(logs, self.algorithm)
        is_eval = any(key.startswith("eval_") for key in logs)
        kind = "eval" if is_eval else "log"
        self.run_dir.append_event(kind, step=state.global_step, total=state.max_steps, **fields)
        if not is_eval:
            self.last_logs = fields
        bad = [k for k in _WATCHED if k in logs and not _finite(logs[k])]
        if bad:
            self._diverged(state.global_step, f"{bad[0]} is {logs[bad[0]]}")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Publish the checkpoint the trainer just wrote, rotate, then honour an interrupt."""
        root = self.run_dir.checkpoints
        staged = checkpoints.staging_dir(root) / f"checkpoint-{state.global_step}"
        model = kwargs.get("model")
        if model is not None and not _weights_finite(model):
            import shutil

            shutil.rmtree(staged, ignore_errors=True)
            self._diverged(state.global_step, "a trainable weight is NaN or infinite")
        distributed.barrier()  # every rank has written its part of the checkpoint
        if not distributed.is_rank_zero():
            self.last_checkpoint = root / staged.name  # rank 0 publishes it
        elif staged.is_dir():
            published = checkpoints.publish(staged, root, state.global_step)
            checkpoints.rotate(root, self.keep)
            self.last_checkpoint = published
            self.run_dir.append_event(
                "checkpoint",
                step=state.global_step,
                path=str(published.relative_to(self.run_dir.root)),
            )
        distributed.barrier()  # published before any rank may stop
        if self.interrupt.requested:
            checkpoint = self.last_checkpoint
            raise RunInterrupted(
                self.interrupt.signum or 15,
                str(checkpoint.relative_to(self.run_dir.root)) if checkpoint else None,
            )

    def _diverged(self, step: int, what: str) -> None:
        kept = (
            f"the last good checkpoint is {self.last_checkpoint.relative_to(self.run_dir.root)}"
            if self.last_checkpoint
            else "no checkpoint was saved before it"
        )
        raise TrainingDivergedError(
            f"training diverged at step {step}: {what}; stopped, {kept}",
            hint="lower training.learning_rate or set training.max_grad_norm",
        )


def _finite(value: Any) -> bool:
    value = value.item() if hasattr(value, "item") else value
    return not isinstance(value, float) or math.isfinite(value)


def _weights_finite(model: Any) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad)
