"""The runner's command line as its own launcher: it claims the run directory (refusing one in use
or not aligntune's), settles a stale status, cleans up after a refusal, and reports a crash in one
line with the traceback saved in error.log. Training itself is replaced by a stub (`cli.train`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from aligntune.core.errors import UserInputError
from aligntune.core.rundir import MARKER, RunDirectory
from aligntune.core.runlock import RunLock, holder_record
from aligntune.runners.common import cli, lifecycle
from aligntune.runners.trl.backend import BACKEND

TINY = Path(__file__).resolve().parents[3] / "recipes" / "tiny"


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    data = yaml.safe_load((TINY / "sft.yaml").read_text())
    data["model"]["name_or_path"] = str(TINY / "model")
    data["data"]["train"]["path"] = str(TINY / "data" / "sft.jsonl")
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def train(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[RunDirectory], int]], None]:
    """Replace training by `body(run_dir)`, which returns the exit code or raises."""

    def set_body(body: Callable[[RunDirectory], int]) -> None:
        def fake(backend: Any, recipe: Any, run_dir: RunDirectory, mode: str) -> int:
            return body(run_dir)

        monkeypatch.setattr(cli, "train", fake)

    return set_body


def run(recipe: Path, run_dir: Path, *extra: str) -> int:
    return cli.main(BACKEND, ["run", str(recipe), "--output", str(run_dir), *extra])


def test_a_crash_is_one_line_and_its_traceback_is_saved(
    recipe: Path, tmp_path: Path, train: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash(run_dir: RunDirectory) -> int:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    train(crash)
    assert run(recipe, tmp_path / "run") == 70
    err = capsys.readouterr().err
    saved = tmp_path / "run" / "error.log"
    assert err.splitlines() == [
        "error: the runner crashed: RuntimeError: CUDA error: an illegal memory access was "
        "encountered",
        f"hint: the traceback is in {saved} (ALIGNTUNE_DEBUG=1 prints it)",
    ]
    text = saved.read_text()
    assert text.startswith("RuntimeError: CUDA error") and "Traceback (most recent call" in text


def test_debug_shows_the_traceback_too(
    recipe: Path,
    tmp_path: Path,
    train: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    train(lambda run_dir: 1 // 0)
    monkeypatch.setenv("ALIGNTUNE_DEBUG", "1")
    assert run(recipe, tmp_path / "run") == 70
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_a_directory_in_use_is_refused(
    recipe: Path, tmp_path: Path, train: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create()
    train(lambda run_dir: pytest.fail("trained in a directory in use"))
    holder = RunLock(run_dir).acquire(holder_record())
    try:
        assert run(recipe, run_dir.root) == 2
    finally:
        holder.release()
    assert "is in use: pid" in capsys.readouterr().err


def test_a_folder_aligntune_did_not_make_is_left_alone(
    recipe: Path, tmp_path: Path, train: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    (mine / "final").mkdir(parents=True)
    (mine / "final" / "thesis.tex").write_text("years of work")
    train(lambda run_dir: pytest.fail("trained in a folder that is not a run directory"))
    assert run(recipe, mine, "--restart") == 1
    assert "--restart would delete files aligntune did not write" in capsys.readouterr().err
    assert sorted(p.name for p in mine.rglob("*")) == ["final", "thesis.tex"]


def test_a_refused_run_leaves_no_folder_behind(
    recipe: Path, tmp_path: Path, train: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(run_dir: RunDirectory) -> int:
        raise UserInputError("data.train: no rows")

    train(refuse)
    assert run(recipe, tmp_path / "runs" / "a") == 1
    assert not (tmp_path / "runs").exists()


def test_a_stale_status_is_settled_when_the_runner_starts(
    recipe: Path, tmp_path: Path, train: Any
) -> None:
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create()
    run_dir.set_status("running", step=0)
    seen: list[Any] = []
    train(lambda rd: seen.append(rd.read_status()) or 0)
    assert run(recipe, run_dir.root) == 0
    assert seen[0]["status"] == "failed" and "killed" in seen[0]["error"]


def test_an_empty_output_is_a_usage_error(recipe: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(BACKEND, ["run", str(recipe), "--output", ""])
    assert caught.value.code == 2


def test_restart_removes_only_what_aligntune_wrote(tmp_path: Path) -> None:
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create()
    for name in ("manifest.json", "status.json", "error.log", "error.rank1.log", "notes.md"):
        (run_dir.root / name).write_text("{}")
    (run_dir.checkpoints / "checkpoint-3").mkdir(parents=True)
    (run_dir.final).mkdir()
    run_dir.log.write_text("the earlier attempts' output\n")
    lifecycle.inspect(run_dir, {}, "trl", "restart", can_resume=True, inputs={})
    assert sorted(p.name for p in run_dir.root.iterdir()) == [MARKER, "container.log", "notes.md"]


def test_the_handed_plan_counts_only_for_the_backend_it_was_made_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aligntune.core.rundir import PLAN_ENV, handed_plan

    handed = {"backend": "trl", "launch": {"runtime": "docker"}}
    monkeypatch.setenv(PLAN_ENV, json.dumps(handed))
    assert handed_plan("trl") == handed and handed_plan("unsloth") is None
