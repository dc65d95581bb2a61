"""Show a run's progress from its events.jsonl: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Protocol

import typer

METRIC_KEYS = ("loss", "reward", "rewards", "learning_rate", "eval_loss")
"""Shown after the step, in this order, when an event has them."""


def format_number(value: Any) -> str:
    """A metric as a short string (4 significant digits, scientific for tiny values)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def metrics_text(event: dict[str, Any]) -> str:
    """`loss 2.31  reward 0.5  learning_rate 4.9e-03` from one event."""
    parts = []
    for key in METRIC_KEYS:
        if key in event and not isinstance(event[key], dict | list):
            parts.append(f"{key} {format_number(event[key])}")
    return "  ".join(parts)


SUMMARY_KEYS = ("loss", "train_loss", "reward", "eval_loss", "train_runtime")
"""The final metrics worth a line in the summary (all of them are in status.json)."""


def summary_text(metrics: dict[str, Any]) -> str:
    """`loss 5.58  train_loss 5.79  train_runtime 6.88` from the final metrics."""
    parts = [f"{k} {format_number(metrics[k])}" for k in SUMMARY_KEYS if k in metrics]
    return "  ".join(parts) or "(none reported)"


def format_duration(seconds: float) -> str:
    """1 h 02 min / 3 min 05 s / 42 s."""
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


class Display(Protocol):
    """Receives each event as the run writes it."""

    def handle(self, event: dict[str, Any]) -> None:
        """Show one event."""
        ...

    def close(self) -> None:
        """Stop drawing (the run has ended)."""
        ...


class PlainDisplay:
    """One line per event: for --quiet, logs and CI."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def handle(self, event: dict[str, Any]) -> None:
        """Print the event as one line."""
        kind = event.get("event")
        elapsed = format_duration(time.monotonic() - self.started)
        if kind == "start":
            resumed = f", resuming at step {event['step']}" if event.get("step") else ""
            typer.echo(f"training: {event.get('total_steps')} steps{resumed}")
        elif kind in ("log", "eval"):
            label = "eval" if kind == "eval" else "step"
            step = f"{label} {event.get('step')}/{event.get('total')}"
            typer.echo(f"{step}  {metrics_text(event)}  ({elapsed})")
        elif kind == "checkpoint":
            typer.echo(f"checkpoint: {event.get('path')} (step {event.get('step')})")

    def close(self) -> None:
        """Nothing to undo."""


class RichDisplay:
    """A live progress bar: step/total, the latest metrics, elapsed and remaining time."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        self.task = self.progress.add_task("starting", total=None, metrics="")
        self.progress.start()

    def handle(self, event: dict[str, Any]) -> None:
        """Move the bar and refresh the metrics."""
        kind = event.get("event")
        if kind == "start":
            self.progress.update(
                self.task,
                description="training",
                total=event.get("total_steps"),
                completed=event.get("step") or 0,
            )
        elif kind == "log":
            self.progress.update(
                self.task, completed=event.get("step", 0), metrics=metrics_text(event)
            )
        elif kind in ("checkpoint", "eval"):
            detail = event.get("path") or metrics_text(event)
            self.progress.console.print(f"{kind} at step {event.get('step')}: {detail}")

    def close(self) -> None:
        """Leave the final bar on screen."""
        self.progress.stop()


def make_display(quiet: bool) -> Display:
    """A rich bar on an interactive terminal unless --quiet, plain lines otherwise."""
    if quiet or not sys.stdout.isatty():
        return PlainDisplay()
    return RichDisplay()
