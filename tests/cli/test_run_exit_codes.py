"""`aligntune run` without an engine: exit codes and what is written, with the launch seam patched.

The fake run handle plays the runner: it writes events and status.json when polled.
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

from aligntune.cli import host, launch, main
from aligntune.core.backends import image_tag
from aligntune.core.plan import HostInfo
from aligntune.core.rundir import RunDirectory

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny"
IMAGE = image_tag("trl", "cpu")
SECRET = "hf_marker_do_not_leak_42"


class FakeRun:
    """Ends with `code` on the second poll, after writing what a runner with that outcome writes."""

    def __init__(self, run_dir: Path, code: int, on_first_poll: Callable[[], None] | None = None):
        self.run_dir = RunDirectory(run_dir)
        self.code = code
        self.polls = 0
        self.signals: list[str] = []
        self.closed = False
        self.on_first_poll = on_first_poll
        self.description = "fake run"

    def poll(self) -> int | None:
        self.polls += 1
        if self.polls == 1:
            self.run_dir.append_event("start", total_steps=3, step=0)
            self.run_dir.append_event("log", step=1, total=3, loss=2.5, learning_rate=1e-3)
            if self.on_first_poll:
                self.on_first_poll()
            return None
        if self.code == 0:
            metrics = {"loss": 2.0, "train_loss": 2.2, "global_step": 3}
            self.run_dir.append_event("end", status="finished", metrics=metrics)
            self.run_dir.set_status("finished", step=3, metrics=metrics)
            (self.run_dir.root / "final").mkdir()
        elif self.code in (130, 143):
            self.run_dir.append_event("end", status="interrupted", checkpoint="checkpoints/c-1")
            self.run_dir.set_status("interrupted", step=1, checkpoint="checkpoints/c-1")
        else:
            self.run_dir.log.write_text("Traceback (most recent call last):\nBoom: it broke\n")
        return self.code

    def stop(self) -> None:
        self.signals.append("TERM")

    def kill(self) -> None:
        self.signals.append("KILL")

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_host(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Describe the host: docker reachable, the given images present, the trl runner installed."""

    def set_host(images: tuple[str, ...] = (IMAGE,)) -> None:
        info = HostInfo(
            docker_available=True, images=frozenset(images), runner_packages=frozenset({"trl"})
        )
        monkeypatch.setattr(host, "probe_host", lambda **_: (info, host.DockerState()))

    set_host()
    return set_host


class Launcher:
    """`aligntune run` in this process; the launch seam records starts instead of making them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.started: list[tuple[str, Any]] = []
        """Every start through the launch seam: ("docker", spec) or ("local", argv)."""
        self.next_run: FakeRun | None = None
        """What the next start returns."""
        monkeypatch.setattr(
            launch, "start_container", lambda spec, log, keep=False: self._start("docker", spec)
        )
        monkeypatch.setattr(
            launch, "start_local", lambda argv, log, env: self._start("local", argv)
        )

    def _start(self, kind: str, what: Any) -> FakeRun:
        self.started.append((kind, what))
        assert self.next_run is not None, "the test did not say what the run does"
        return self.next_run

    def run(self, *args: str) -> tuple[int, str, str]:
        """`aligntune run ARGS`: exit code, stdout, stderr."""
        self.monkeypatch.setattr(sys, "argv", ["aligntune", "run", *args])
        self.monkeypatch.setenv("HF_HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / "at-hf"))
        self.monkeypatch.delenv("ALIGNTUNE_DEBUG", raising=False)
        with pytest.raises(SystemExit) as exit_info:
            main.main()
        out, err = self.capsys.readouterr()
        code = exit_info.value.code
        return int(code if isinstance(code, int) else 0), out, err


@pytest.fixture
def launcher(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_host: Callable[..., None],
) -> Launcher:
    """The launcher on a host with docker, the trl cpu image and the trl runner (see fake_host)."""
    return Launcher(monkeypatch, capsys)


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

    def slow_start(spec: Any, log: Path, keep: bool = False) -> FakeRun:
        os.kill(os.getpid(), signal.SIGTERM)
        return fake

    monkeypatch.setattr(launch, "start_container", slow_start)
    code, _, _ = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert code == 143 and fake.signals == ["TERM"]


def test_second_ctrl_c_kills(tmp_path: Path, launcher: Launcher) -> None:
    def twice() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    launcher.next_run = fake = FakeRun(tmp_path / "run", 137, on_first_poll=twice)
    code, _, _ = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert fake.signals == ["TERM", "KILL"] and code == 130


def test_crash_exits_with_the_runner_code_and_shows_the_log_tail(
    tmp_path: Path, launcher: Launcher
) -> None:
    launcher.next_run = FakeRun(tmp_path / "run", 70)
    code, _, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert code == 70 and "Boom: it broke" in err and "exit 70" in err


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
    (run_dir / "plan.json").write_text(json.dumps({"backend": "trl"}))
    args = (str(TINY / "sft.yaml"), "-o", str(run_dir), "--backend", "unsloth")
    code, _, err = launcher.run(*args)
    assert code == 2 and "was trained with backend trl" in err
    launcher.next_run = FakeRun(run_dir, 0)
    code, out, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(run_dir))
    assert code == 0, err
    assert "resuming: plan.json chose backend trl" in out
