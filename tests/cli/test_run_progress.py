"""Progress lines from events.jsonl, as --quiet and non-TTY output shows them."""

from __future__ import annotations

import pytest

from aligntune.cli.progress import (
    PlainDisplay,
    RichDisplay,
    format_duration,
    format_number,
    make_display,
    metrics_text,
    summary_text,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [(2.31456, "2.315"), (0.000123, "1.23e-04"), (0, "0"), (30, "30"), (float("nan"), "nan")],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text


def test_metrics_text_orders_and_shortens() -> None:
    event = {"event": "log", "step": 3, "learning_rate": 5e-3, "reward": 0.5, "loss": 2.0}
    assert metrics_text(event) == "loss 2  reward 0.5  learning_rate 0.005"


def test_summary_text_and_durations() -> None:
    assert (
        summary_text({"loss": 1.5, "train_loss": 2.25, "epoch": 3}) == "loss 1.5  train_loss 2.25"
    )
    assert summary_text({}) == "(none reported)"
    assert format_duration(42.4) == "42 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(3720) == "1 h 02 min"


def test_plain_display_prints_one_line_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    display = PlainDisplay()
    display.handle({"event": "start", "total_steps": 10, "step": 4})
    display.handle({"event": "log", "step": 5, "total": 10, "loss": 1.25})
    display.handle({"event": "checkpoint", "step": 5, "path": "checkpoints/checkpoint-5"})
    display.handle({"event": "unknown"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "training: 10 steps, resuming at step 4"
    assert lines[1].startswith("step 5/10  loss 1.25  (")
    assert lines[2] == "checkpoint: checkpoints/checkpoint-5 (step 5)"
    assert len(lines) == 3


def test_quiet_or_no_tty_means_plain_lines() -> None:
    assert isinstance(make_display(quiet=True), PlainDisplay)
    assert isinstance(make_display(quiet=False), PlainDisplay)  # pytest captures: not a TTY


def test_rich_display_follows_the_steps() -> None:
    display = RichDisplay()
    display.handle({"event": "start", "total_steps": 4, "step": 0})
    display.handle({"event": "log", "step": 2, "total": 4, "loss": 1.0})
    task = display.progress.tasks[0]
    assert (task.completed, task.total, task.fields["metrics"]) == (2, 4, "loss 1")
    display.close()
