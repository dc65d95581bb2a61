"""Every module `architectures.py` offers LoRA for trains: lm_head too (TRL's default chunked SFT
loss refused a LoRA-wrapped lm_head, so such a recipe passed validate and crashed with exit 70)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from trl_helpers import changed, make_run, trainable

pytestmark = pytest.mark.training


def test_lora_on_lm_head_trains(tiny_recipe: Callable[..., Path], tmp_path: Path) -> None:
    model = {"name_or_path": "./model", "peft": {"method": "lora", "target_modules": ["lm_head"]}}
    recipe = tiny_recipe("sft", model=model, training={"max_steps": 2, "save_steps": 2})
    run = make_run(recipe, tmp_path / "run")
    before = trainable(run.trainer.model)
    assert before and all("lm_head" in name for name in before)
    run.train()
    assert set(changed(before, run.trainer.model)) == set(before)
