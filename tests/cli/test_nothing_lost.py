"""`aligntune run` never loses or overwrites a run: one launch per run directory, a refused run
changes nothing, a stale status is settled, a running container is followed again, and a closed
stdout does not stop training. The launch seam is patched (fake_launch.py).

A full disk and a read-only file system are simulated by making the one write fail (`os.pwrite`
for the lock record, `Path.mkdir` for the run directory): no small or read-only mount exists here.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sys
from pathlib import Path

import pytest
from fake_launch import TINY, FakeRun, Launcher, RefusingRun

from aligntune.core.rundir import MARKER, PLAN_ENV, RunDirectory
from aligntune.core.runlock import LOCK_ENV, RunDirectoryInUse, RunLock, holder_record

RECIPE = str(TINY / "sft.yaml")
REFUSAL = "error: /x holds a different run: its recipe (recipe.resolved.yaml) differs"


def tree(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every path under `folder` with its bytes (None for a folder) and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def finished_run(tmp_path: Path, launcher: Launcher) -> RunDirectory:
    """A run directory holding a finished run, made through the launcher."""
    launcher.next_run = FakeRun(tmp_path / "run", 0)
    code, _, err = launcher.run(RECIPE, "-o", str(tmp_path / "run"))
    assert code == 0, err
    return RunDirectory(tmp_path / "run")


def test_a_refused_run_leaves_no_new_run_directory(tmp_path: Path, launcher: Launcher) -> None:
    target = tmp_path / "runs" / "new"
    launcher.next_run = RefusingRun(target, 1, REFUSAL)
    code, _, err = launcher.run(RECIPE, "-o", str(target))
    assert code == 1 and REFUSAL in err and "nothing was changed" in err
    assert not (tmp_path / "runs").exists()


def test_a_refused_run_changes_nothing_in_a_finished_run(
    tmp_path: Path, launcher: Launcher
) -> None:
    run_dir = finished_run(tmp_path, launcher)
    before = tree(run_dir.root)
    launcher.next_run = RefusingRun(run_dir.root, 1, REFUSAL)
    code, _, err = launcher.run(RECIPE, "-o", str(run_dir.root), "--runtime", "local")
    assert code == 1 and REFUSAL in err
    after = tree(run_dir.root)
    # The marker records who last held the lock; every file of the run is as it was.
    assert {k: v for k, v in after.items() if k != MARKER} == {
        k: v for k, v in before.items() if k != MARKER
    }


def test_a_second_launch_is_refused_with_the_holder(tmp_path: Path, launcher: Launcher) -> None:
    run_dir = finished_run(tmp_path, launcher)
    launcher.started.clear()
    holder = RunLock(run_dir).acquire(holder_record(container="aligntune-first-1"))
    try:
        code, _, err = launcher.run(RECIPE, "-o", str(run_dir.root))
    finally:
        holder.release()
    assert code == 2 and launcher.started == []
    assert f"is in use: pid {os.getpid()}" in err and "container aligntune-first-1" in err


def test_the_launcher_holds_the_lock_while_the_run_goes_on(
    tmp_path: Path, launcher: Launcher
) -> None:
    refused: list[str] = []

    def second_launch() -> None:
        with pytest.raises(RunDirectoryInUse) as caught:
            RunLock(RunDirectory(tmp_path / "run")).acquire(holder_record())
        refused.append(str(caught.value))

    launcher.next_run = FakeRun(tmp_path / "run", 0, on_first_poll=second_launch)
    code, _, err = launcher.run(RECIPE, "-o", str(tmp_path / "run"))
    assert code == 0, err
    assert refused and "aligntune-tiny-sft-" in refused[0]  # the container is named
    RunLock(RunDirectory(tmp_path / "run")).acquire(holder_record()).release()  # free again


def test_a_stale_status_is_settled_before_a_new_runner_starts(
    tmp_path: Path, launcher: Launcher
) -> None:
    run_dir = finished_run(tmp_path, launcher)
    (run_dir.checkpoints / "checkpoint-2").mkdir(parents=True)
    run_dir.append_event("checkpoint", step=2, path="checkpoints/checkpoint-2")
    run_dir.set_status("running", step=0)  # what a runner killed mid-run leaves
    launcher.next_run = FakeRun(run_dir.root, 0)
    code, _, err = launcher.run(RECIPE, "-o", str(run_dir.root))
    assert code == 0, err
    kinds = [(e["event"], e.get("status")) for e in run_dir.iter_events()]
    settled = kinds.index(("end", "interrupted"))
    assert kinds[settled + 1] == ("start", None)


def test_a_still_running_container_is_followed_not_started_again(
    tmp_path: Path, launcher: Launcher
) -> None:
    launcher.running = FakeRun(tmp_path / "run", 0)
    launcher.running.handoff = {PLAN_ENV: json.dumps({"backend": "trl"})}
    code, out, err = launcher.run(RECIPE, "-o", str(tmp_path / "run"))
    assert code == 0, err
    assert launcher.started == [] and "following fake run, still training here" in out
    assert launcher.running.closed


def test_a_closed_stdout_does_not_stop_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: Launcher
) -> None:
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    launcher.next_run = fake = FakeRun(tmp_path / "run", 0)
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code, _, _ = launcher.run(RECIPE, "-o", str(tmp_path / "run"), "-q")
    assert code == 0 and fake.signals == [] and fake.closed
    assert (RunDirectory(tmp_path / "run").read_status() or {})["status"] == "finished"


def test_the_local_runner_inherits_the_lock_and_gets_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: Launcher
) -> None:
    seen: dict[str, object] = {}

    def start_local(argv: list[str], log: Path, env: dict[str, str], pass_fds=()) -> FakeRun:
        seen.update(env=env, pass_fds=pass_fds)
        return launcher._start("local", argv, env)

    from aligntune.cli import launch

    monkeypatch.setattr(launch, "start_local", start_local)
    launcher.next_run = FakeRun(tmp_path / "run", 0)
    code, _, err = launcher.run(RECIPE, "-o", str(tmp_path / "run"), "--runtime", "local")
    assert code == 0, err
    env = seen["env"]
    assert isinstance(env, dict)
    fd = int(env[LOCK_ENV].removeprefix("fd:"))
    assert seen["pass_fds"] == (fd,)
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan == json.loads(env[PLAN_ENV]) and plan["launch"]["runtime"] == "local"


def test_the_container_is_told_the_launcher_holds_the_lock(
    tmp_path: Path, launcher: Launcher
) -> None:
    launcher.next_run = fake = FakeRun(tmp_path / "run", 0)
    code, _, err = launcher.run(RECIPE, "-o", str(tmp_path / "run"))
    assert code == 0, err
    assert fake.handoff[LOCK_ENV] == "host"
    assert json.loads(fake.handoff[PLAN_ENV])["launch"]["runtime"] == "docker"


def test_a_full_disk_is_one_line_and_leaves_no_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: Launcher
) -> None:
    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    code, _, err = launcher.run(RECIPE, "-o", str(tmp_path / "runs" / "a"))
    assert code == 1 and launcher.started == [] and "Traceback" not in err
    assert f"error: cannot write {tmp_path / 'runs' / 'a' / MARKER}: No space left" in err
    assert not (tmp_path / "runs").exists()


def test_a_read_only_file_system_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: Launcher
) -> None:
    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(Path, "mkdir", read_only)
    code, _, err = launcher.run(RECIPE, "-o", str(tmp_path / "run"), "--runtime", "local")
    assert code == 1 and launcher.started == []
    assert "Read-only file system" in err and "hint: that file system is read-only" in err


def test_a_folder_without_write_permission(tmp_path: Path, launcher: Launcher) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    launcher.next_run = FakeRun(locked / "run", 0)
    code, _, err = launcher.run(RECIPE, "-o", str(locked / "run"))
    if os.geteuid() == 0:  # root writes into a 0555 folder anyway: the run goes ahead
        assert code == 0, err
    else:
        assert code == 1 and f"{locked} is not writable for you" in err
        assert not (locked / "run").exists()
