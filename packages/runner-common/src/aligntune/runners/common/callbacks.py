"""The one TrainerCallback that connects a TRL trainer to the run directory.

It writes the events the launcher reads, publishes checkpoints atomically (in the background,
`checkpoints.Publisher`), applies the divergence rules (`divergence.py`) to every log before
anything bad is saved, checks the weights before a checkpoint or final/ is published, and turns
a signal into "save this step, then stop".
"""

from __future__ import annotations

import math
import resource
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from transformers import TrainerCallback

from aligntune.core.algorithm_sections import AlgorithmSectionType
from aligntune.core.algorithms import get_algorithm
from aligntune.core.rundir import RunDirectory, write_atomic
from aligntune.runners.common import checkpoints, distributed, portable
from aligntune.runners.common.divergence import Finding, Watch, number
from aligntune.runners.common.errors import RunInterrupted, TrainingDivergedError
from aligntune.runners.common.signals import InterruptRequest

_RENAMES = {"lr": "learning_rate"}
"""Log keys every trainer may use that events spell otherwise (PPOTrainer logs `lr`)."""
_SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second")


def clean_number(value: Any) -> Any:
    """JSON-safe metric: floats stay floats, NaN/inf become None, tensors become numbers."""
    value = number(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def renamed(logs: dict[str, Any], algorithm: str) -> dict[str, Any]:
    """A trainer's log dict with aligntune's names for loss, learning_rate and reward."""
    renames = {**_RENAMES, **get_algorithm(algorithm).log_renames}
    return {renames.get(key, key): value for key, value in logs.items()}


def last_logged(run_dir: RunDirectory) -> dict[str, Any]:
    """The metrics of the run's last `log` event (an earlier attempt's, when resuming)."""
    logs = [e for e in run_dir.iter_events() if e.get("event") == "log"]
    skip = ("event", "time", "step", "total")
    return {k: v for k, v in logs[-1].items() if k not in skip} if logs else {}


class TrainedToTheEnd(Exception):
    """Raised before the first step of an attempt that resumed at the run's last step: there is
    nothing left to train (`RunDirectoryCallback.on_step_begin`)."""


class RunDirectoryCallback(TrainerCallback):
    """Events, atomic checkpoints, the divergence rules and graceful interruption."""

    def __init__(
        self,
        run_dir: RunDirectory,
        algorithm: AlgorithmSectionType,
        interrupt: InterruptRequest,
        keep: int,
        start_fields: dict[str, Any],
        renames: Mapping[str, str] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.renames = dict(renames or {})
        """Paths here -> the names a checkpoint records (`aligntune.core.paths.renamed_paths`)."""
        self.algorithm = algorithm.name
        self.watch = Watch(algorithm)
        self.interrupt = interrupt
        self.publisher = checkpoints.Publisher(run_dir.checkpoints, keep)
        self.start_fields = start_fields
        self.last_checkpoint: Path | None = None
        self.last_logs: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.began: float | None = None
        """When this attempt's training loop began (None once its first step was announced)."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Announce the run with its total number of optimizer steps."""
        config = getattr(kwargs.get("model"), "config", None)
        self.watch.begin(state.global_step, getattr(config, "vocab_size", None))
        self.began = time.time()
        if state.global_step:  # resumed: the run's metrics so far, until this attempt logs
            self.last_logs = last_logged(self.run_dir)
        self.run_dir.append_event(
            "start",
            total_steps=state.max_steps,
            step=state.global_step,
            **self.start_fields,
            **distributed.start_fields(kwargs.get("train_dataloader")),
        )

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop an attempt that resumed from the checkpoint of the last step (a run stopped or
        killed after it) before it trains: transformers compares the step with max_steps only
        after a step, so mid-epoch it would train one step past the end."""
        if 0 < state.max_steps <= state.global_step:
            raise TrainedToTheEnd

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """After a step: announce the attempt's first one; if a stop was requested, make the
        trainer save this step now."""
        if self.publisher.done:
            self.announce_published()
        if self.began is not None:
            now = time.time()
            started = self.start_fields.get("runner_started") or self.began
            self.run_dir.append_event(
                "first_step",
                step=state.global_step,
                seconds_since_start=round(now - started, 3),
                seconds_since_train_begin=round(now - self.began, 3),
            )
            self.began = None
        if distributed.agree_to_stop(self.interrupt):
            control.should_save = True

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        """Write a `log` or `eval` event, then apply the rules (a stop comes before the save)."""
        logs = dict(logs or {})
        if any(key in logs for key in _SUMMARY_KEYS):
            self.summary.update({k: clean_number(v) for k, v in logs.items()})
            return
        metrics = renamed(logs, self.algorithm)
        fields = {key: clean_number(value) for key, value in metrics.items()}
        is_eval = any(key.startswith("eval_") for key in logs)
        kind = "eval" if is_eval else "log"
        if not is_eval:
            fields.update(peak_memory())
        self.run_dir.append_event(kind, step=state.global_step, total=state.max_steps, **fields)
        if not is_eval:
            self.last_logs = fields
        for found in self.watch.observe(state.global_step, metrics, evaluation=is_eval):
            if found.stops:
                self._diverged(found)
            self._warn(found)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Hand the checkpoint the trainer just wrote to the publisher, then honour an interrupt
        (once it is published)."""
        root = self.run_dir.checkpoints
        staged = checkpoints.staging_dir(root) / f"checkpoint-{state.global_step}"
        self.announce_published()
        if not _weights_finite(kwargs.get("model")):
            shutil.rmtree(staged, ignore_errors=True)
            self._diverged(_bad_weights(state.global_step, since=state.global_step))
        distributed.barrier()  # every rank has written its part of the checkpoint
        if not distributed.is_rank_zero():
            self.last_checkpoint = root / staged.name  # rank 0 publishes it
        elif staged.is_dir():
            portable.rename_paths(staged, self.renames)
            self.publisher.start(staged, state.global_step)
            self.last_checkpoint = root / staged.name
        if self.interrupt.requested:
            self.announce_published()
        distributed.barrier()  # published before any rank may stop
        if self.interrupt.requested:
            checkpoint = self.last_checkpoint
            raise RunInterrupted(
                self.interrupt.signum or 15,
                str(checkpoint.relative_to(self.run_dir.root)) if checkpoint else None,
            )

    def announce_published(self) -> None:
        """Wait until the checkpoint being published is durable, then tell the launcher."""
        published = self.publisher.wait()
        if published is not None:
            self.run_dir.append_event(
                "checkpoint",
                step=checkpoints.step_of(published),
                path=str(published.relative_to(self.run_dir.root)),
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Before final/ is published: a model with a NaN or infinite weight has not finished."""
        if not _weights_finite(kwargs.get("model")):
            # A checkpoint of this step had its weights checked when it was saved: it stays.
            self._diverged(_bad_weights(state.global_step, since=state.global_step + 1))

    def _warn(self, found: Finding) -> None:
        self.run_dir.append_event(
            "warning", step=found.step, metric=found.metric, message=found.message
        )
        if distributed.is_rank_zero():
            print(f"aligntune: warning: step {found.step}: {found.message}", file=sys.stderr)
            print(f"aligntune: hint: {found.hint}", file=sys.stderr)

    def _diverged(self, found: Finding) -> NoReturn:
        self.announce_published()  # then withdraw it too if it is past the last good step
        root = self.run_dir.checkpoints
        if distributed.is_rank_zero():
            withdraw(root, found.since)
        good = last_good(root, found.since)
        raise TrainingDivergedError(
            found.step,
            found.message,
            found.metric,
            str(good.relative_to(self.run_dir.root)) if good else None,
            hint=found.hint,
        )


def peak_memory() -> dict[str, float]:
    """This process's peak resident memory, and on CUDA its peak GPU memory, in MB."""
    peaks = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peaks["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peaks


def last_good(root: Path, since: int) -> Path | None:
    """The newest complete checkpoint saved before step `since`."""
    good = [
        path
        for path in (root.iterdir() if root.is_dir() else [])
        if checkpoints.check_complete(path) is None and checkpoints.step_of(path) < since
    ]
    return max(good, key=checkpoints.step_of, default=None)


def withdraw(root: Path, since: int) -> None:
    """Remove the checkpoints saved from step `since` on; LATEST names the last good one again."""
    for path in root.iterdir() if root.is_dir() else []:
        if checkpoints.check_complete(path) is None and checkpoints.step_of(path) >= since:
            shutil.rmtree(path)
    good = last_good(root, since)
    if good is not None:
        write_atomic(root / checkpoints.LATEST, f"{good.name}\n")
    else:
        (root / checkpoints.LATEST).unlink(missing_ok=True)


def _bad_weights(step: int, since: int) -> Finding:
    return Finding("weights", None, step, since, "a trainable weight is NaN or infinite")


def _weights_finite(model: Any) -> bool:
    """Whether every rank's trainable weights are finite (each may hold only a shard)."""
    finite = True
    if model is not None:
        import torch

        finite = all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad)
    return all(distributed.gather(finite))
