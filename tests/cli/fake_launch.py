"""A fake launch seam for `aligntune run` tests: no engine, no runner process.

`Launcher` runs `aligntune run` in-process with `launch.start_container`, `attach_container` and
`start_local` patched; `FakeRun` plays the runner: it writes what a runner with a given outcome
writes when polled.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aligntune.cli import launch, main
from aligntune.core.backends import image_tag
from aligntune.core.rundir import PLAN_ENV, RunDirectory

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny"
IMAGE = image_tag("trl", "cpu")


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
        self.handoff: dict[str, str] = {}
        """What the launcher handed the runner (its plan, the lock it holds for it)."""

    def poll(self) -> int | None:
        self.polls += 1
        if self.polls == 1:
            # Like the runner: plan.json from the launcher's hand-over, once the run is accepted.
            self.run_dir.write_json(self.run_dir.plan, json.loads(self.handoff[PLAN_ENV]))
            self.run_dir.set_status("running", step=0)
            self.run_dir.append_event("start", total_steps=3, step=0)
            self.run_dir.append_event("log", step=1, total=3, loss=2.5, learning_rate=1e-3)
            if self.on_first_poll:
                self.on_first_poll()
            return None
        if self.code == 0:
            metrics = {"loss": 2.0, "train_loss": 2.2, "global_step": 3}
            self.run_dir.append_event("end", status="finished", metrics=metrics)
            self.run_dir.set_status("finished", step=3, metrics=metrics)
            (self.run_dir.root / "final").mkdir(exist_ok=True)
        elif self.code in (130, 143):
            self.run_dir.append_event("end", status="interrupted", checkpoint="checkpoints/c-1")
            self.run_dir.set_status("interrupted", step=1, checkpoint="checkpoints/c-1")
        elif self.code == 70:  # what the runner's crash handler writes
            summary = "RuntimeError: Boom: it broke"
            trace = f"Traceback (most recent call last):\n  File x, line 1\n{summary}\n"
            self.run_dir.error_log.write_text(f"{summary}\n\n{trace}")
            with self.run_dir.log.open("a") as log:
                log.write(f"error: the runner crashed: {summary}\n")
        return self.code

    def stop(self) -> None:
        self.signals.append("TERM")

    def kill(self) -> None:
        self.signals.append("KILL")

    def close(self) -> None:
        self.closed = True


class RefusingRun(FakeRun):
    """A runner that refuses the run before training: its error lines, nothing else written."""

    def __init__(self, run_dir: Path, code: int, message: str) -> None:
        super().__init__(run_dir, code)
        self.message = message

    def poll(self) -> int | None:
        with self.run_dir.log.open("a") as log:
            log.write(f"{self.message}\n")
        return self.code


class Launcher:
    """`aligntune run` in this process; the launch seam records starts instead of making them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.started: list[tuple[str, Any]] = []
        """Every start through the launch seam: ("docker", spec) or ("local", argv)."""
        self.next_run: FakeRun | None = None
        """What the next start returns."""
        self.running: FakeRun | None = None
        """A run an earlier launcher started that is still going (attach_container finds it)."""
        monkeypatch.setattr(launch, "start_container", self._start_container)
        monkeypatch.setattr(launch, "attach_container", lambda *a, **k: self.running)
        monkeypatch.setattr(launch, "start_local", self._start_local)

    def _start_container(
        self, spec: Any, log: Path, keep: bool = False, handoff: dict[str, str] | None = None
    ) -> FakeRun:
        return self._start("docker", spec, handoff or {})

    def _start_local(
        self, argv: list[str], log: Path, env: dict[str, str], pass_fds: tuple[int, ...] = ()
    ) -> FakeRun:
        return self._start("local", argv, env)

    def _start(self, kind: str, what: Any, handoff: dict[str, str]) -> FakeRun:
        self.started.append((kind, what))
        assert self.next_run is not None, "the test did not say what the run does"
        self.next_run.handoff = dict(handoff)
        return self.next_run

    def run(self, *args: str, debug: bool = False) -> tuple[int, str, str]:
        """`aligntune run ARGS` (with ALIGNTUNE_DEBUG=1 when `debug`): exit code, stdout, stderr."""
        self.monkeypatch.setattr(sys, "argv", ["aligntune", "run", *args])
        self.monkeypatch.setenv("HF_HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / "at-hf"))
        if debug:
            self.monkeypatch.setenv("ALIGNTUNE_DEBUG", "1")
        else:
            self.monkeypatch.delenv("ALIGNTUNE_DEBUG", raising=False)
        with pytest.raises(SystemExit) as exit_info:
            main.main()
        out, err = self.capsys.readouterr()
        code = exit_info.value.code
        return int(code if isinstance(code, int) else 0), out, err
