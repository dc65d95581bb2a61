"""A runner started by `aligntune run` does not check again the data files the launcher checked,
unless a file changed since; without the launcher's plan it checks every file.

The launcher's side is its own code (`check_recipe`, `checked_data.handoff`), the runner's the real
CLI training the tiny model. What the runner read is the kernel's count of this process's bytes
read (`rchar` in /proc/self/io), and its log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from trl_helpers import HOST

from aligntune.cli.commands import check_recipe
from aligntune.core import checked_data
from aligntune.core.rundir import PLAN_ENV
from aligntune.core.selection import select_backend
from aligntune.runners.trl.cli import main

pytestmark = pytest.mark.training

UNCHANGED = "the file is unchanged since the launcher checked its"
QUICK = {"training": {"max_steps": 1, "save_steps": 1}, "samples": {"count": 0}}


def launcher_plan(recipe: Path) -> str:
    """What `aligntune run --runtime local` hands the runner after checking `recipe`."""
    loaded, summaries = check_recipe(recipe)
    plan = select_backend(loaded, HOST, backend="trl", runtime="local")
    handed = {**plan.model_dump(mode="json"), "launch": {"runtime": "local"}}
    handed[checked_data.CHECKED_KEY] = checked_data.handoff(loaded, summaries)
    return json.dumps(handed)


def bytes_read() -> int:
    """Bytes this process has read through system calls (page cache included)."""
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(io["rchar"])


def big_sft_file(path: Path, size: int) -> int:
    """Rewrite `path` (chat rows) to at least `size` bytes of long conversations; its size."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row["messages"][-1]["content"] += " and so on" * 600
    block = "".join(json.dumps(row) + "\n" for row in rows)
    path.write_text(block * -(-size // len(block)))
    return path.stat().st_size


def test_the_runner_does_not_read_a_file_the_launcher_checked(
    tiny_recipe: Callable[..., Path],
    tiny_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    size = big_sft_file(tiny_dir / "data" / "sft.jsonl", 24 << 20)
    recipe = tiny_recipe("sft", data={"train": {"max_samples": 16}}, **QUICK)
    handed = launcher_plan(recipe)
    read: dict[str, int] = {}
    logs: dict[str, str] = {}
    # The first run imports what the others use (reading their code): theirs compare.
    for case in ("first, by hand", "by the launcher", "by hand"):
        if case == "by the launcher":
            monkeypatch.setenv(PLAN_ENV, handed)
        else:
            monkeypatch.delenv(PLAN_ENV, raising=False)
        before = bytes_read()
        code = main(["run", str(recipe), "--output", str(tmp_path / case)])
        read[case] = bytes_read() - before
        logs[case] = capsys.readouterr().err
        assert code == 0, logs[case]
    # What both read besides: the loading, the manifest's sha256, the first rows (the template's
    # render check, the rewards); what the runner started by hand reads more: its row check.
    assert 0.95 * size < read["by hand"] - read["by the launcher"] < 1.05 * size, (size, read)
    rows = len((tiny_dir / "data" / "sft.jsonl").read_text().splitlines())
    assert f"data.train: {UNCHANGED} {rows} rows; not checked again" in logs["by the launcher"]
    assert UNCHANGED not in logs["by hand"]
    plan = json.loads((tmp_path / "by the launcher" / "plan.json").read_text())
    assert plan[checked_data.CHECKED_KEY]["data.train"]["identity"]["size"] == size


def _robot_line(line: str) -> str:
    """A row that is JSON, but whose first turn has a role no format knows (only the row check
    names the line; the loading would say `row 3` of the mixed data)."""
    return line.replace('"role": "user"', '"role": "robot"', 1)


def _rewritten(path: Path) -> None:
    """Line 3 broken, the file written again (a new mtime)."""
    lines = path.read_text().splitlines()
    lines[2] = _robot_line(lines[2])
    path.write_text("\n".join(lines) + "\n")


def _same_size_and_mtime(path: Path) -> None:
    """Line 3 broken in place, byte for byte as long, and the old mtime put back (`touch -r`)."""
    info = path.stat()
    lines = path.read_text().splitlines()
    broken = _robot_line(lines[2])
    lines[2] = broken.replace("?", "", len(broken) - len(lines[2]))
    path.write_text("\n".join(lines) + "\n")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size


@pytest.mark.parametrize("change", [_rewritten, _same_size_and_mtime])
def test_a_file_changed_after_the_launchers_check_is_checked_again(
    change: Callable[[Path], None],
    tiny_recipe: Callable[..., Path],
    tiny_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = tiny_recipe("sft", **QUICK)
    monkeypatch.setenv(PLAN_ENV, launcher_plan(recipe))
    data = tiny_dir / "data" / "sft.jsonl"
    change(data)
    code = main(["run", str(recipe), "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"data.train: {data}:3: messages[0].role: unknown role 'robot'" in err
    assert UNCHANGED not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
