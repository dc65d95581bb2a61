"""`aligntune run` hands its runner what its row check found in each local data file, with the
file as it was when checked, so the runner reads again only what changed (the runner's side:
tests/runners/trl/test_launcher_checked_data.py). The launch seam is patched (fake_launch.py)."""

from __future__ import annotations

import json
from pathlib import Path

from fake_launch import TINY, FakeRun, Launcher

from aligntune.core.checked_data import CHECKED_KEY
from aligntune.core.data_check import file_identity
from aligntune.core.rundir import PLAN_ENV

DATA = TINY / "data" / "sft.jsonl"


def test_the_runner_is_handed_each_checked_file_as_it_was_checked(
    tmp_path: Path, launcher: Launcher
) -> None:
    launcher.next_run = fake = FakeRun(tmp_path / "run", 0)
    code, _, err = launcher.run(str(TINY / "sft.yaml"), "-o", str(tmp_path / "run"))
    assert code == 0, err
    checked = json.loads(fake.handoff[PLAN_ENV])[CHECKED_KEY]
    assert list(checked) == ["data.train"]
    entry = checked["data.train"]
    assert entry["path"] == str(DATA)
    identity = file_identity(DATA)
    assert identity is not None and entry["identity"] == vars(identity)
    rows = len(DATA.read_text().splitlines())
    assert entry["found"] == {
        "rows": rows,
        "columns": ["messages"],
        "format": "messages",
        "origin": "detected from line 1",
        "uses_tools": False,
        "uses_calls": False,
        "labels": None,
        "kinds": {"messages": "list"},
        "gaps": {},
    }
    # The runner writes the plan it was handed: plan.json says which files the launcher checked.
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan[CHECKED_KEY] == checked
