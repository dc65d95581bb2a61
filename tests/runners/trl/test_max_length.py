"""A max_length no prompt fits in: TRL's DPO trainer drops every such pair, and with none left
the run crashed on an empty sampler (exit 70). It ends with exit 1 and one line saying why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aligntune.runners.trl.cli import main

pytestmark = pytest.mark.training


def test_no_prompt_within_max_length_is_refused(
    tiny_recipe: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tiny_recipe("dpo", data={"train": {"path": "./data/dpo.jsonl"}, "max_length": 2})
    code = main(["run", str(recipe), "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert (
        "error: data.train: every one of the 32 rows' prompts fills data.max_length (2 tokens), "
        "so the trainer drops them all" in err
    )
