"""How a saved folder's files are renamed from the paths a runner read to the user's names."""

from __future__ import annotations

import json
from pathlib import Path

from aligntune.runners.common.portable import rename_paths, renamed_text

RENAMES = {"/aligntune/recipe/model": "/home/u/model", "/aligntune/run": "/home/u/runs/x"}


def test_whole_paths_and_paths_under_them_are_renamed_once() -> None:
    card = "base_model: /aligntune/recipe/model\n- base_model:adapter:/aligntune/recipe/model"
    assert renamed_text(card, RENAMES) == (
        "base_model: /home/u/model\n- base_model:adapter:/home/u/model"
    )
    assert renamed_text('"/aligntune/run/checkpoints"', RENAMES) == '"/home/u/runs/x/checkpoints"'
    # A longer name that only starts like a renamed path is another path.
    assert renamed_text("/aligntune/recipe/model2", RENAMES) == "/aligntune/recipe/model2"
    assert renamed_text("/aligntune/run", {"/aligntune/run": "/aligntune/run/x"}) == (
        "/aligntune/run/x"
    )


def test_adapter_config_and_card_are_rewritten(tmp_path: Path) -> None:
    config = {"base_model_name_or_path": "/aligntune/recipe/model", "r": 8}
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    (tmp_path / "README.md").write_text("---\nbase_model: /aligntune/recipe/model\n---\n")
    rename_paths(tmp_path, RENAMES)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved == {"base_model_name_or_path": "/home/u/model", "r": 8}
    assert (tmp_path / "README.md").read_text() == "---\nbase_model: /home/u/model\n---\n"
