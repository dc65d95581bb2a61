"""Real processes, local runtime: whatever happens to `aligntune run`, the run is not lost.

The launcher is killed with SIGKILL mid-run (its runner saves a checkpoint and records
"interrupted", and the same command resumes it); a changed recipe against a finished run is
refused without touching it; a crash inside the runner is one line and a saved traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from trl_helpers import read_events

from aligntune.core.rundir import MARKER, RunDirectory
from aligntune.core.runlock import RunLock, holder_record

pytestmark = pytest.mark.training

LAUNCHER = [sys.executable, "-m", "aligntune.cli.main", "run"]
ENV = dict(os.environ, TRL_EXPERIMENTAL_SILENCE="1", TOKENIZERS_PARALLELISM="false")


def launch(recipe: Path, run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    """`aligntune run RECIPE --runtime local -q --output RUN_DIR` as a user starts it."""
    args = [*LAUNCHER, str(recipe), "--runtime", "local", "-q", "--output", str(run_dir), *extra]
    return subprocess.Popen(
        args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def logged(run_dir: Path) -> bool:
    events = run_dir / "events.jsonl"
    return events.is_file() and '"event": "log"' in events.read_text()


def test_killing_the_launcher_stops_the_runner_with_a_checkpoint_and_resume_finishes(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    steps = 60
    recipe = tiny_recipe(
        "sft", training={"max_steps": steps, "save_steps": 1000, "logging_steps": 1}
    )
    run_dir = tmp_path / "run"
    launcher = launch(recipe, run_dir)
    wait_for(lambda: logged(run_dir), "the first step")
    runner = json.loads((run_dir / MARKER).read_text())
    assert runner["launched_by"] == launcher.pid and runner["pid"] != launcher.pid
    launcher.kill()  # SIGKILL: no handler runs in the launcher
    launcher.communicate(timeout=30)
    wait_for(lambda: not alive(runner["pid"]), "the runner to stop", timeout=150)

    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted", status
    checkpoint = run_dir / status["checkpoint"]
    assert (checkpoint / "aligntune_checkpoint.json").is_file()
    assert status["step"] < steps and not (run_dir / "final").exists()
    RunLock(RunDirectory(run_dir)).acquire(holder_record()).release()  # the lock went with it

    again = launch(recipe, run_dir)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, out + err
    starts = [e for e in read_events(run_dir) if e["event"] == "start"]
    assert starts[-1]["resumed_from"] == checkpoint.name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"


def test_a_changed_recipe_against_a_finished_run_changes_nothing(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", training={"max_steps": 2, "save_steps": 2})
    run_dir = tmp_path / "run"
    first = launch(recipe, run_dir)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err

    def files() -> dict[str, tuple[bytes, int]]:
        return {
            str(p.relative_to(run_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != MARKER  # the marker records the last lock holder
        }

    before = files()
    tiny_recipe("sft", training={"max_steps": 2, "save_steps": 2, "learning_rate": 5e-4})
    second = launch(recipe, run_dir)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 1, err
    assert "holds a different run: this recipe changes what it trains" in err
    assert "training.learning_rate: was 0.005, now 0.0005" in err
    # Refused by the launcher itself, before a runner process was started for it.
    assert "the runner refused" not in err and "Traceback" not in err
    assert err.startswith(f"error: {run_dir} holds a different run")
    assert files() == before


def test_a_crash_inside_the_runner_is_one_line_and_a_saved_traceback(
    tiny_recipe: Callable[..., Path], tiny_dir: Path, tmp_path: Path
) -> None:
    # Sound on the rows the checks before launch call it on; broken once training is under way.
    (tiny_dir / "broken_rewards.py").write_text(
        "def explode(completions, trainer_state=None, **kwargs):\n"
        "    if trainer_state is not None and trainer_state.global_step >= 1:\n"
        "        raise ZeroDivisionError('the reward library divided by zero')\n"
        "    return [0.0 for _ in completions]\n"
    )
    recipe = tiny_recipe(
        "grpo", rewards=[{"function": "broken_rewards:explode"}], training={"max_steps": 2}
    )
    run_dir = tmp_path / "run"
    process = launch(recipe, run_dir)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 70, err
    lines = [line for line in err.splitlines() if line.startswith(("error:", "hint:"))]
    assert lines == [
        "error: the runner crashed: ZeroDivisionError: the reward library divided by zero",
        f"hint: the traceback is in {run_dir / 'error.log'} (ALIGNTUNE_DEBUG=1 prints it)",
    ]
    assert "Traceback" not in err
    assert "Traceback (most recent call last)" in (run_dir / "error.log").read_text()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"


def test_sigterm_to_the_launcher_still_stops_gracefully(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", training={"max_steps": 100000, "save_steps": 100000})
    run_dir = tmp_path / "run"
    launcher = launch(recipe, run_dir)
    wait_for(lambda: logged(run_dir), "the first step")
    launcher.send_signal(signal.SIGTERM)
    _, err = launcher.communicate(timeout=180)
    assert launcher.returncode == 143, err
    assert "interrupted at step" in err and "resume with: aligntune run" in err


def test_progress_arrives_while_training_and_a_killed_runner_loses_no_event(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    """The launcher prints step lines while the runner trains; SIGKILL to the runner (no handler
    runs) leaves every event it had written: whole lines, one log per step up to the last."""
    recipe = tiny_recipe("sft", training={"max_steps": 100000, "save_steps": 100000})
    run_dir = tmp_path / "run"
    launcher = launch(recipe, run_dir)
    assert launcher.stdout is not None
    steps_shown = []
    while len(steps_shown) < 2:  # the first step lines, shown while the run goes on
        words = launcher.stdout.readline().split()
        assert words, "the launcher ended before showing two steps"
        if words[0] == "step":
            steps_shown.append(words[1])
    assert steps_shown == ["1/100000", "2/100000"] and launcher.poll() is None
    runner = json.loads((run_dir / MARKER).read_text())["pid"]
    wait_for(lambda: sum(1 for e in read_events(run_dir) if e["event"] == "log") >= 5, "5 steps")
    os.kill(runner, signal.SIGKILL)
    launcher.communicate(timeout=60)
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line whole
    steps = [e["step"] for e in events if e["event"] == "log"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 5
    assert [e["event"] for e in events[:2]] == ["start", "first_step"]
