"""What `aligntune run` says when the runner has ended, and the exit code it returns.

A crash inside the runner is one line naming the traceback's file (error.log); the traceback
reaches the terminal only with ALIGNTUNE_DEBUG=1.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from aligntune.cli.progress import format_duration, summary_text
from aligntune.core.errors import DEBUG_ENV, ExitCode, signal_exit_code
from aligntune.core.rundir import RunDirectory

INTERRUPTED = (ExitCode.INTERRUPTED_SIGINT, ExitCode.INTERRUPTED_SIGTERM)


@dataclass
class Outcome:
    """How the runner ended, as the launcher saw it."""

    code: int
    signum: int | None
    """The signal the launcher was stopped with (and passed on), if any."""
    output: list[str]
    """The last lines the runner wrote during this launch."""
    took: float
    since: float
    """When this launch began (unix time): an error.log older than that is an earlier run's."""
    refused: bool = False
    """The runner refused the run before training; the run directory is as it was."""


def report(outcome: Outcome, run_dir: RunDirectory, resume: str, recipe: Path) -> int:
    """Print the outcome; return the launcher's exit code."""
    status = run_dir.read_status() or {}
    events = reversed(list(run_dir.iter_events()))
    end: dict[str, Any] = next((e for e in events if e.get("event") == "end"), {})
    code = outcome.code
    if code == ExitCode.OK:
        return finished(status, end, run_dir, recipe, outcome.took)
    if status.get("status") == "finished" and (code > 128 or outcome.signum is not None):
        # Stopped or killed while it wrote its samples or report: final/ was already published.
        typer.echo("the run had finished when it was stopped; its model is complete", err=True)
        return finished(status, end, run_dir, recipe, outcome.took)
    if code in INTERRUPTED or outcome.signum is not None:
        interrupted(status, end, resume)
        show_report(run_dir, err=True)
        return signal_exit_code(outcome.signum) if outcome.signum is not None else code
    if code == ExitCode.CRASH:
        return crashed(run_dir, outcome)
    if code > 128:  # killed by a signal nobody here sent: the kernel's OOM killer, most often
        name = signal.Signals(code - 128).name if code - 128 in signal.valid_signals() else code
        typer.echo(f"error: the runner was killed by {name} (out of memory?)", err=True)
        interrupted(status, end, resume)
        return ExitCode.CRASH
    if outcome.refused:
        typer.echo(f"the runner refused the run (exit {code}); nothing was changed:", err=True)
    else:
        typer.echo(f"the run failed (exit {code}); the end of {run_dir.log}:", err=True)
    for line in outcome.output:
        typer.echo(f"  {line}", err=True)
    return code


def finished(
    status: dict[str, Any], end: dict[str, Any], run_dir: RunDirectory, recipe: Path, took: float
) -> int:
    """The summary of a finished run."""
    metrics = status.get("metrics") or end.get("metrics") or {}
    steps = metrics.get("global_step", status.get("step", "?"))
    typer.echo(f"finished {recipe}: {steps} steps in {format_duration(took)}")
    typer.echo(f"metrics: {summary_text(metrics)}")
    if run_dir.final.is_dir():
        typer.echo(f"model: {run_dir.final}")
    typer.echo(f"run directory: {run_dir.root}")
    show_report(run_dir, err=False)
    return ExitCode.OK


def show_report(run_dir: RunDirectory, err: bool) -> None:
    """Where the run report is and its summary's first lines (drawn here if the runner did not)."""
    from aligntune.cli.run_report import report_lines

    try:
        lines = report_lines(run_dir)
    except Exception as exc:  # the run's outcome stands without its report
        typer.echo(f"warning: the run report was not written: {exc}", err=True)
        return
    typer.echo("\n".join(lines), err=err)


def interrupted(status: dict[str, Any], end: dict[str, Any], resume: str) -> None:
    """Where a stopped run can go on from, and how."""
    checkpoint = end.get("checkpoint") or status.get("checkpoint")
    where = f"; checkpoint {checkpoint}" if checkpoint else "; no checkpoint was saved"
    typer.echo(f"interrupted at step {status.get('step', '?')}{where}", err=True)
    typer.echo(f"resume with: {resume}", err=True)


def crashed(run_dir: RunDirectory, outcome: Outcome) -> int:
    """One line for a runner crash, naming the file with its traceback."""
    saved = run_dir.newest_error_log(since=outcome.since)
    if saved is None:
        typer.echo(f"error: the runner crashed (exit {outcome.code}); see {run_dir.log}", err=True)
        return ExitCode.CRASH
    text = saved.read_text(encoding="utf-8", errors="replace")
    typer.echo(f"error: the runner crashed: {text.splitlines()[0] if text else '?'}", err=True)
    typer.echo(f"hint: the traceback is in {saved} ({DEBUG_ENV}=1 prints it)", err=True)
    if os.environ.get(DEBUG_ENV) == "1":
        typer.echo(text, err=True)
    return ExitCode.CRASH
