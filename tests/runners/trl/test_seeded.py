"""LoRA runs are reproducible: the adapters' random start is seeded with training.seed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file
from trl_helpers import make_run

pytestmark = pytest.mark.training


def test_the_same_recipe_and_seed_give_bitwise_equal_adapters(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", training={"max_steps": 2, "save_steps": 2})
    adapters = []
    for name in ("first", "second"):
        make_run(recipe, tmp_path / name).train()
        adapters.append(load_file(tmp_path / name / "final" / "adapter_model.safetensors"))
    first, second = adapters
    assert first.keys() == second.keys() and any("lora_A" in key for key in first)
    assert [key for key in first if not (first[key] == second[key]).all()] == []
