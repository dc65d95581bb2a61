"""The run directory across attempts: claim it, start, resume, refuse a different run, restart,
finish, and report a crash."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aligntune.core.errors import DEBUG_ENV, ExitCode, ResumeRefused, UserInputError
from aligntune.core.paths import renamed_paths
from aligntune.core.plan import Plan
from aligntune.core.recipe import Recipe
from aligntune.core.report import REPORT_OUTPUTS
from aligntune.core.resume_rules import different_run, refused
from aligntune.core.rundir import REFUSED, RunDirectory, handed_plan, write_atomic
from aligntune.core.runlock import RunLock, holder_record
from aligntune.core.topology import NODE_RANK
from aligntune.runners.common import checkpoints, distributed, portable, torchrun
from aligntune.runners.common.trackers import TRACKER_FOLDERS

Mode = Literal["auto", "resume", "restart"]
"""auto: resume if this run directory holds this run, else start; resume: must resume."""

RUNNER_OUTPUTS = (
    "manifest.json",
    "trainer_settings.json",
    "events.jsonl",
    "status.json",
    "checkpoints",
    "final",
    ".final.tmp",
    "reward_model",
    *REPORT_OUTPUTS,
    *TRACKER_FOLDERS,
)
"""What --restart removes: the runner's outputs (and crash logs, `error*.log`), never the marker,
the launcher's log or anything aligntune did not write."""


@dataclass
class Attempt:
    """What this attempt found in the run directory."""

    resume_from: Path | None = None
    skipped: list[checkpoints.Skipped] = field(default_factory=list)
    previous: dict[str, Any] | None = None
    """The earlier manifest, when this directory already holds this run."""
    finished: bool = False


def has_previous_run(run_dir: RunDirectory) -> bool:
    """Whether a runner already started a run here (the launcher's plan alone does not count)."""
    return run_dir.manifest.is_file() or run_dir.checkpoints.is_dir()


def claim_directory(run_dir: RunDirectory, mode: Mode) -> None:
    """Refuse a folder aligntune may not write (`RunDirectory.check_usable`), else make it and
    its marker; nothing else is written before this."""
    run_dir.check_usable(mode)
    run_dir.create()


def inspect(
    run_dir: RunDirectory,
    resolved: dict[str, Any],
    backend: str,
    mode: Mode,
    can_resume: bool,
    inputs: Mapping[str, str],
) -> Attempt:
    """Decide how this attempt starts; refuse to mix two different runs in one directory, or to
    write into (or clear) a folder aligntune did not make."""
    claim_directory(run_dir, mode)
    if mode == "restart":
        clear_outputs(run_dir)
        return Attempt()
    if not has_previous_run(run_dir):
        if mode == "resume":
            raise UserInputError(f"--resume: {run_dir.root} holds no earlier run to resume")
        return Attempt()
    manifest = run_dir.read_json(run_dir.manifest)
    refusal = different_run(run_dir, manifest, resolved, backend, inputs)
    if refusal:
        raise refused(run_dir, refusal)
    status = run_dir.read_status() or {}
    if status.get("status") == "finished":
        return Attempt(previous=manifest, finished=True)
    resume_from, skipped = checkpoints.newest_complete(run_dir.checkpoints)
    if resume_from is not None and not can_resume:
        raise ResumeRefused(
            f"{run_dir.root} has {resume_from.name}, but TRL's PPOTrainer cannot resume",
            hint="use --restart to train again from the start",
        )
    return Attempt(resume_from=resume_from, skipped=skipped, previous=manifest)


def clear_outputs(run_dir: RunDirectory) -> None:
    """--restart: remove what an earlier attempt of the runner wrote (never the launcher's plan)."""
    for path in [
        *(run_dir.root / name for name in RUNNER_OUTPUTS),
        *run_dir.root.glob("error*.log"),
    ]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_start(
    run_dir: RunDirectory,
    plan: Plan,
    resolved: dict[str, Any],
    manifest: dict[str, Any],
    settings: dict[str, Any],
    attempt: Attempt,
) -> None:
    """plan.json (the launcher's, handed over, else this plan unless one for this backend is
    there), resolved recipe, manifest, settings, status: only now does an accepted run write."""
    run_dir.root.mkdir(parents=True, exist_ok=True)
    existing = run_dir.read_json(run_dir.plan)
    handed = handed_plan(plan.backend)
    if handed is not None:
        run_dir.write_json(run_dir.plan, handed)
    elif existing is None or existing.get("backend") != plan.backend:
        run_dir.write_json(run_dir.plan, plan.model_dump(mode="json"))
    run_dir.write_recipe(resolved)
    if attempt.previous is not None:
        manifest = dict(attempt.previous)
        manifest.setdefault("resumes", []).append(
            {
                "time": time.time(),
                "from": attempt.resume_from.name if attempt.resume_from else None,
                "skipped": [{"path": s.path.name, "reason": s.reason} for s in attempt.skipped],
            }
        )
    run_dir.write_json(run_dir.manifest, manifest)
    run_dir.write_json(run_dir.trainer_settings, settings)
    run_dir.set_status("running", step=step_of(attempt.resume_from))
    for skipped in attempt.skipped:
        print(f"aligntune: skipped {skipped.path.name}: {skipped.reason}", file=sys.stderr)
    if attempt.resume_from is not None:
        print(f"aligntune: resuming from {attempt.resume_from.name}", file=sys.stderr)


def step_of(path: Path | None) -> int:
    """The step a checkpoint was saved at; 0 for none."""
    return checkpoints.step_of(path) if path is not None else 0


def publish_final(run_dir: RunDirectory, trainer: Any, tokenizer: Any, recipe: Recipe) -> Path:
    """Write final/ under a temporary name and rename it when complete."""
    scratch = run_dir.root / ".final.tmp"
    if not distributed.is_rank_zero():
        trainer.save_model(str(scratch))  # FSDP gathers from every rank; rank 0 writes
        return run_dir.final
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        save_model(trainer, tokenizer, scratch, recipe, run_dir.root)
        checkpoints.make_durable(
            scratch
        )  # a run recorded as finished keeps its model through a crash
    except BaseException as exc:
        error = checkpoints.abandon_write(scratch, run_dir.final, exc)
        if error is exc:
            raise
        raise error from exc
    if run_dir.final.exists():
        shutil.rmtree(run_dir.final)
    scratch.rename(run_dir.final)
    checkpoints.fsync(run_dir.root)
    return run_dir.final


def save_model(trainer: Any, tokenizer: Any, path: Path, recipe: Recipe, run_root: Path) -> None:
    """The trained model (or LoRA adapter) in `path`, self-contained (tokenizer, chat template,
    generation config) and naming its base as the user does (`portable`)."""
    trainer.save_model(str(path))
    renames = renamed_paths(recipe, run_root)
    portable.finish_folder(path, trainer.model, tokenizer, recipe, renames)


class Claim:
    """This runner process's hold on its run directory: checked, made, locked for the whole run
    (unless its launcher holds the lock for it) and reconciled. A refused attempt (exit 1-3)
    leaves no folder it made. A torchrun worker, or a node after the first, claims nothing: the
    process that started the group holds the claim."""

    def __init__(self, run_dir: RunDirectory, mode: str, env: Mapping[str, str] = os.environ):
        self.run_dir = run_dir
        self.mode = mode
        self.env = env
        self.lock = RunLock(run_dir)
        self.created: Path | None = None
        self.code: int | None = None
        """The exit code the run ended with (set by the caller)."""

    def __enter__(self) -> Claim:
        if torchrun.is_worker(self.env) or self.env.get(NODE_RANK, "0") not in ("", "0"):
            return self
        self.run_dir.check_usable(self.mode)
        self.created = self.run_dir.create()
        try:
            if not self.lock.adopt(self.env):
                self.lock.acquire(holder_record())
            self.run_dir.reconcile()
        except BaseException:
            self.lock.release()
            self.run_dir.discard(self.created)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        code = getattr(exc, "exit_code", None) if exc is not None else self.code
        if code in REFUSED:
            self.run_dir.discard(self.created)
        self.lock.release()


def report_crash(exc: BaseException, run_dir: RunDirectory | None) -> int:
    """A crash inside the runner: one line on stderr naming the file that holds the traceback
    (the run directory's error.log); the traceback itself only with ALIGNTUNE_DEBUG=1, or when
    it could not be saved anywhere."""
    message = str(exc).strip().splitlines()
    summary = f"{type(exc).__name__}: {message[0]}"[:300] if message else type(exc).__name__
    text = "".join(traceback.format_exception(exc))
    saved = _save_traceback(f"{summary}\n\n{text}", run_dir)
    print(f"error: the runner crashed: {summary}", file=sys.stderr)
    if saved is not None:
        print(f"hint: the traceback is in {saved} ({DEBUG_ENV}=1 prints it)", file=sys.stderr)
    if saved is None or os.environ.get(DEBUG_ENV) == "1":
        print(text, file=sys.stderr, end="")
    return ExitCode.CRASH


def _save_traceback(text: str, run_dir: RunDirectory | None) -> Path | None:
    """Write a crash report into the run directory (else a temporary file); where it went."""
    rank = distributed.rank()
    if run_dir is not None:
        path = run_dir.error_log if rank == 0 else run_dir.root / f"error.rank{rank}.log"
        try:
            write_atomic(path, text)
            return path
        except UserInputError:
            pass  # a full or read-only run directory: keep the report elsewhere
    try:
        fd, name = tempfile.mkstemp(prefix="aligntune-error-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError:
        return None
    return Path(name)
