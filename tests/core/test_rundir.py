"""The run directory's safety rules: whose folder it is, one holder at a time, clean disk errors,
and a status that never stays "running" after its runner died.

ENOSPC and EROFS cannot be produced for real here (no small or read-only mount is available), so
they are simulated by making the one low-level write (`os.fsync` / `os.pwrite`) fail.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aligntune.core.errors import ExitCode, UserInputError
from aligntune.core.rundir import MARKER, RunDirectory, RunDirectoryError, write_atomic
from aligntune.core.runlock import LOCK_ENV, RunDirectoryInUse, RunLock, holder_record


def test_a_folder_aligntune_did_not_make_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine" / "final").mkdir(parents=True)
    RunDirectory(tmp_path / "mine").check_usable("restart")  # empty folders: nothing to lose
    (tmp_path / "mine" / "final" / "thesis.tex").write_text("years of work")
    with pytest.raises(UserInputError, match="--restart would delete") as caught:
        RunDirectory(tmp_path / "mine").check_usable("restart")
    assert caught.value.exit_code == ExitCode.USER_INPUT
    with pytest.raises(UserInputError, match="a run would write among"):
        RunDirectory(tmp_path / "mine").check_usable("auto")
    # New, empty, or marked: fine.
    RunDirectory(tmp_path / "new" / "run").check_usable("restart")
    (tmp_path / "empty").mkdir()
    RunDirectory(tmp_path / "empty").check_usable("restart")
    (tmp_path / "mine" / MARKER).touch()
    RunDirectory(tmp_path / "mine").check_usable("restart")


def test_a_file_in_the_way_is_one_clean_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(RunDirectoryError, match=r"notes\.txt is a file") as caught:
        RunDirectory(tmp_path / "notes.txt" / "run").check_usable("auto")
    assert caught.value.hint is not None and "--output" in caught.value.hint


def test_create_reports_the_topmost_folder_it_made_and_discard_removes_it(tmp_path: Path) -> None:
    run_dir = RunDirectory(tmp_path / "runs" / "a" / "b")
    assert run_dir.create() == tmp_path / "runs"
    assert run_dir.marker.is_file()
    assert run_dir.create() is None  # already there
    run_dir.discard(tmp_path / "runs")
    assert not (tmp_path / "runs").exists() and tmp_path.is_dir()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_failed_write_leaves_the_old_file_and_no_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    target = tmp_path / "status.json"
    target.write_text("old")

    def fail(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(RunDirectoryError, match=f"cannot write {target}: {os.strerror(code)}"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def _checkpointed(tmp_path: Path) -> RunDirectory:
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create()
    (run_dir.checkpoints / "checkpoint-4").mkdir(parents=True)
    run_dir.append_event("checkpoint", step=4, path="checkpoints/checkpoint-4")
    run_dir.append_event("checkpoint", step=6, path="checkpoints/checkpoint-6")  # rotated away
    run_dir.set_status("running", step=0)
    return run_dir


def test_a_stale_running_status_becomes_interrupted_at_the_last_checkpoint(tmp_path: Path) -> None:
    run_dir = _checkpointed(tmp_path)
    status = run_dir.reconcile()
    assert status is not None and status["status"] == "interrupted"
    assert status["step"] == 4 and status["checkpoint"] == "checkpoints/checkpoint-4"
    end = list(run_dir.iter_events())[-1]
    assert end["event"] == "end" and end["status"] == "interrupted" and end["reconciled"]
    assert run_dir.reconcile() is None  # nothing stale any more


@pytest.mark.parametrize("holding", [False, True], ids=["one event", "held open"])
def test_an_event_after_a_line_cut_short_is_a_line_of_its_own(
    holding: bool, tmp_path: Path
) -> None:
    # A runner killed (or out of disk) mid-line leaves events.jsonl without its last newline.
    run_dir = _checkpointed(tmp_path)
    with run_dir.events.open("a", encoding="utf-8") as handle:
        handle.write('{"event": "log", "step": 5, "lo')
    if holding:
        with run_dir.holding_events():
            run_dir.append_event("log", step=5, loss=1.0)
    status = run_dir.reconcile()
    assert status is not None and status["status"] == "interrupted"
    events = list(run_dir.iter_events())
    assert [e["event"] for e in events] == ["checkpoint", "checkpoint", *["log"] * holding, "end"]
    assert events[-1]["reconciled"]


def test_a_damaged_status_is_reconciled_and_other_damaged_files_are_named(tmp_path: Path) -> None:
    # A run directory copied with its files cut short (a full disk, an interrupted copy).
    run_dir = _checkpointed(tmp_path)
    run_dir.status.write_text('{"status": "runn')
    status = run_dir.reconcile()
    assert status is not None and status["status"] == "interrupted" and status["step"] == 4
    run_dir.manifest.write_text("")
    with pytest.raises(RunDirectoryError) as damaged:
        run_dir.read_json(run_dir.manifest)
    assert str(damaged.value).startswith(f"{run_dir.manifest} is damaged: Expecting value")
    assert damaged.value.exit_code == ExitCode.USER_INPUT and "--restart" in str(damaged.value.hint)


def test_a_stale_running_status_without_checkpoint_becomes_failed(tmp_path: Path) -> None:
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.set_status("running", step=0)
    status = run_dir.reconcile()
    assert status is not None and status["status"] == "failed" and "killed" in status["error"]


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create()
    first = RunLock(run_dir).acquire(holder_record(container="aligntune-x-1"))
    with pytest.raises(RunDirectoryInUse, match=f"pid {os.getpid()} .*container aligntune-x-1"):
        RunLock(run_dir).acquire(holder_record())
    first.release()
    RunLock(run_dir).acquire(holder_record()).release()


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl,sys,time; f=open(sys.argv[1]); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(run_dir.marker)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirectoryInUse):
        RunLock(run_dir).acquire(holder_record())
    holder.kill()
    holder.wait()
    RunLock(run_dir).acquire(holder_record()).release()


def test_a_runner_keeps_the_descriptor_its_launcher_handed_it(tmp_path: Path) -> None:
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create()
    launcher = RunLock(run_dir).acquire(holder_record())
    assert launcher.fd is not None
    runner = RunLock(run_dir)
    assert runner.adopt({LOCK_ENV: f"fd:{launcher.fd}"})
    assert json.loads(run_dir.marker.read_text())["launched_by"] == os.getpid()
    other = RunDirectory(tmp_path / "other")
    other.create()
    assert not RunLock(other).adopt({LOCK_ENV: f"fd:{launcher.fd}"})  # another directory's lock
    assert not RunLock(other).adopt({})


def test_a_full_disk_while_taking_the_lock_is_one_clean_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create()

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(RunDirectoryError, match="No space left on device") as caught:
        RunLock(run_dir).acquire(holder_record())
    assert caught.value.hint is not None and "free space" in caught.value.hint
    monkeypatch.undo()
    RunLock(run_dir).acquire(holder_record()).release()  # the failed attempt holds nothing
