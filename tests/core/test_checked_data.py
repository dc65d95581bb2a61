"""What the launcher's data check hands its runner (`checked_data`): the runner trusts it only for
a file exactly as checked, under the same check settings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aligntune.core.checked_data import CHECKED_KEY, handoff, unchanged
from aligntune.core.loader import recipe_from_dict
from aligntune.core.preflight import check_inputs
from aligntune.core.recipe import Recipe

ROW = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hi."}]}


def sft_recipe(folder: Path, **source: Any) -> Recipe:
    """An SFT recipe on `folder`/d.jsonl (a hub model: only the data is local)."""
    return recipe_from_dict(
        {
            "algorithm": {"name": "sft"},
            "model": {"name_or_path": "org/model"},
            "data": {"train": {"path": "./d.jsonl", **source}},
        },
        base_dir=folder,
    )


def handed(recipe: Recipe) -> dict[str, Any]:
    """The plan the launcher hands the runner after checking `recipe`, as the runner reads it."""
    return json.loads(json.dumps({CHECKED_KEY: handoff(recipe, check_inputs(recipe))}))


def test_an_unchanged_file_keeps_what_its_check_found(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(json.dumps(ROW) + "\n" + json.dumps(ROW) + "\n")
    recipe = sft_recipe(tmp_path)
    assert unchanged(recipe, handed(recipe)) == check_inputs(recipe)
    assert check_inputs(recipe)["data.train"].rows == 2


def test_feedback_labels_and_column_facts_survive_the_handoff(tmp_path: Path) -> None:
    """What the data rules read besides the counts (each row's label in order, each column's
    type and first gap) comes back from plan.json as the check found it."""
    rows = [{"prompt": "p", "completion": "c", "label": n % 3 == 0, "n": n} for n in range(5)]
    rows[3].pop("n")
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = recipe_from_dict(
        {
            "algorithm": {"name": "kto"},
            "model": {"name_or_path": "org/model"},
            "data": {"train": {"path": "./d.jsonl"}},
        },
        base_dir=tmp_path,
    )
    found = check_inputs(recipe)
    assert found["data.train"].labels == bytes([1, 0, 0, 1, 0])
    assert found["data.train"].gaps == {"n": 4}
    assert unchanged(recipe, handed(recipe)) == found


def test_other_check_settings_or_no_plan_vouch_for_nothing(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(json.dumps(ROW) + "\n")
    plan = handed(sft_recipe(tmp_path))
    assert unchanged(sft_recipe(tmp_path, roles={"human": "user"}), plan) == {}
    assert unchanged(sft_recipe(tmp_path, format="messages"), plan) == {}
    assert unchanged(sft_recipe(tmp_path), None) == {}
    broken = {CHECKED_KEY: {"data.train": {**plan[CHECKED_KEY]["data.train"], "found": {}}}}
    assert unchanged(sft_recipe(tmp_path), broken) == {}


def test_a_fifo_where_the_checked_file_was_is_not_opened(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(json.dumps(ROW) + "\n")
    recipe = sft_recipe(tmp_path)
    plan = handed(recipe)
    (tmp_path / "d.jsonl").unlink()
    os.mkfifo(tmp_path / "d.jsonl")  # opening it to read would wait for a writer forever
    assert unchanged(recipe, plan) == {}
