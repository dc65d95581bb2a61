"""`aligntune run` without an engine: exit codes and what is written, with the launch seam patched
(fake_launch.py: the fake run handle plays the runner, writing events and status.json when polled).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_launch import IMAGE, TINY, FakeRun, Launcher

from aligntune.cli import launch
from aligntune.core.rundir import RunDirectory

SECRET = "hf_marker_do_not_leak_42"


def test_finished_run_exits_0_with_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: Launcher
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    launcher.next_run = fake = FakeRun(tmp_path / "run", 0)
    code, out, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert code == 0, err
    assert [kind for kind, _ in launcher.started] == ["docker"]
    assert "finished" in out and "3 steps" in out and "train_loss 2.2" in out
    assert f"model: {tmp_path / 'run' / 'final'}" in out
    assert fake.closed
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["backend"] == "trl" and plan["launch"]["container"]["image"] == IMAGE
    assert "HF_TOKEN" in plan["launch"]["container"]["passthrough_env"]
    assert SECRET not in (tmp_path / "run" / "plan.json").read_text()
    assert SECRET not in out + err


def test_bad_recipe_exits_1_and_writes_nothing(
    tmp_path: Path, write_recipe: Any, launcher: Launcher
) -> None:
    recipe = write_recipe({"algorithm": {"name": "sft"}, "model": {"name_or_path": "./nope"}})
    code, _, err = launcher.run(str(recipe), "-o", str(tmp_path / "run"))
    assert code == 1 and "error:" in err
    assert not (tmp_path / "run").exists() and launcher.started == []


def test_missing_image_exits_3_with_the_build_command(
    tmp_path: Path, fake_host: Callable[..., None], launcher: Launcher
) -> None:
    fake_host(images=())
    code, _, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert code == 3
    assert "aligntune images build trl-runner --device cpu" in err
    assert not (tmp_path / "run").exists() and launcher.started == []


def test_gpus_on_a_cpu_plan_is_a_usage_error(tmp_path: Path, launcher: Launcher) -> None:
    args = (str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"), "--gpus", "all")
    code, _, err = launcher.run(*args)
    assert code == 2 and "--gpus needs a cuda image" in err
    assert launcher.started == [] and not (tmp_path / "run").exists()


def test_runner_interrupted_exits_143_and_says_how_to_resume(
    tmp_path: Path, launcher: Launcher
) -> None:
    launcher.next_run = FakeRun(tmp_path / "run", 143)
    code, _, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert code == 143
    assert "checkpoints/c-1" in err
    assert f"resume with: aligntune run {TINY / 'sft.yaml'} --output {tmp_path / 'run'}" in err


def test_sigterm_to_the_launcher_stops_the_run_and_exits_143(
    tmp_path: Path, launcher: Launcher
) -> None:
    launcher.next_run = fake = FakeRun(
        tmp_path / "run", 143, on_first_poll=lambda: os.kill(os.getpid(), signal.SIGTERM)
    )
    code, _, _ = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert code == 143 and fake.signals == ["TERM"]


def test_sigterm_while_the_container_is_created_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: Launcher
) -> None:
    fake = FakeRun(tmp_path / "run", 143)

    def slow_start(spec: Any, log: Path, keep: bool = False, handoff: Any = None) -> FakeRun:
        os.kill(os.getpid(), signal.SIGTERM)
        fake.handoff = dict(handoff)
        return fake

    monkeypatch.setattr(launch, "start_container", slow_start)
    code, _, _ = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert code == 143 and fake.signals == ["TERM"]


class StoppedAfterFinishing(FakeRun):
    """A runner that had published final/ and recorded "finished" when Ctrl-C reached it while
    it wrote its samples and report (it then exits 130)."""

    def poll(self) -> int | None:
        code = super().poll()
        return None if code is None else 130


def test_ctrl_c_after_the_run_finished_reports_it_finished(
    tmp_path: Path, launcher: Launcher
) -> None:
    def ctrl_c() -> None:
        os.kill(os.getpid(), signal.SIGINT)

    launcher.next_run = StoppedAfterFinishing(tmp_path / "run", 0, on_first_poll=ctrl_c)
    code, out, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert code == 0, err
    assert "the run had finished when it was stopped; its model is complete" in err
    assert "finished" in out and f"model: {tmp_path / 'run' / 'final'}" in out
    assert "interrupted" not in err and "resume with" not in err


def test_second_ctrl_c_kills(tmp_path: Path, launcher: Launcher) -> None:
    def twice() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    launcher.next_run = fake = FakeRun(tmp_path / "run", 137, on_first_poll=twice)
    code, _, _ = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert fake.signals == ["TERM", "KILL"] and code == 130


def test_crash_is_one_line_naming_the_saved_traceback(tmp_path: Path, launcher: Launcher) -> None:
    launcher.next_run = FakeRun(tmp_path / "run", 70)
    code, _, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert code == 70 and "Traceback" not in err
    assert err.splitlines() == [
        "error: the runner crashed: RuntimeError: Boom: it broke",
        f"hint: the traceback is in {tmp_path / 'run' / 'error.log'} (ALIGNTUNE_DEBUG=1 prints it)",
    ]
    launcher.next_run = FakeRun(tmp_path / "run", 70)
    code, _, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"), debug=True)
    assert code == 70 and "Traceback (most recent call last)" in err


def test_runner_killed_by_the_kernel_is_a_crash_with_its_last_checkpoint(
    tmp_path: Path, launcher: Launcher
) -> None:
    run_dir = RunDirectory(tmp_path / "run")

    def checkpoint() -> None:
        (run_dir.checkpoints / "checkpoint-1").mkdir(parents=True)
        run_dir.append_event("checkpoint", step=1, path="checkpoints/checkpoint-1")

    # Killed after step 1: no end event, status.json still says "running".
    launcher.next_run = FakeRun(run_dir.root, 137, on_first_poll=checkpoint)
    code, _, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(run_dir.root))
    assert code == 70 and "killed by SIGKILL" in err
    assert "interrupted at step 1; checkpoint checkpoints/checkpoint-1" in err
    status = run_dir.read_status() or {}
    assert status["status"] == "interrupted" and status["checkpoint"] == "checkpoints/checkpoint-1"


def test_local_runtime_starts_the_runner_on_this_host(tmp_path: Path, launcher: Launcher) -> None:
    launcher.next_run = FakeRun(tmp_path / "run", 0)
    args = (str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"), "--runtime", "local", "--restart")
    code, _, err = launcher.run(*args)
    assert code == 0, err
    ((kind, argv),) = launcher.started
    assert kind == "local"
    assert argv == [
        sys.executable,
        "-m",
        "aligntune.runners.trl",
        "run",
        str(TINY / "sft.yaml"),
        "--output",
        str(tmp_path / "run"),
        "--restart",
    ]
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["runtime"] == "local" and plan["image"] is None
    # The runner resolves the recipe's paths itself and is the one to write the resolved recipe.
    assert not (tmp_path / "run" / "recipe.resolved.yaml").exists()


def test_resumed_run_keeps_its_backend(tmp_path: Path, launcher: Launcher) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".aligntune-run").touch()
    (run_dir / "plan.json").write_text(json.dumps({"backend": "trl"}))
    args = (str(TINY / "sft.yaml"), "-o", str(run_dir), "--backend", "unsloth")
    code, _, err = launcher.run(*args)
    assert code == 2 and "was trained with backend trl" in err
    launcher.next_run = FakeRun(run_dir, 0)
    code, out, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(run_dir))
    assert code == 0, err
    # The explanation says what was asked (auto, by the recipe) and why trl ran: no "requested trl".
    lines = out.splitlines()
    assert lines[0] == "backend:   trl (requested: auto)"
    assert next(line for line in lines if line.startswith("why:")) == (
        "why:       resuming: plan.json chose backend trl"
    )
    assert "was requested" not in out
