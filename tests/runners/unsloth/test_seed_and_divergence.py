"""Through the Unsloth runner (CPU mode): seeded adapters, and a run gone wrong exits 4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from unsloth_helpers import needs_unsloth_venv, run_unsloth

pytestmark = [pytest.mark.training, needs_unsloth_venv]


def lora_sft(make_recipe: Any, **training: Any) -> dict[str, Any]:
    """The tiny SFT recipe on Unsloth with LoRA and these training settings."""
    recipe = make_recipe("sft", backend="unsloth")
    recipe["model"]["peft"] = {"method": "lora", "r": 8, "alpha": 16}
    recipe["training"].update(training)
    return recipe


def test_the_same_recipe_and_seed_give_bitwise_equal_adapters(
    make_recipe: Any, write_recipe: Any, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    path = write_recipe(lora_sft(make_recipe, max_steps=2, save_steps=2, learning_rate=1e-2))
    adapters = []
    for name in ("first", "second"):
        done = run_unsloth("run", str(path), "--output", str(tmp_path / name))
        assert done.returncode == 0, done.stderr[-3000:]
        adapters.append(load_file(str(tmp_path / name / "final" / "adapter_model.safetensors")))
    first, second = adapters
    assert first.keys() == second.keys() and any("lora_A" in key for key in first)
    assert [key for key in first if not (first[key] == second[key]).all()] == []


def test_a_loss_stuck_at_ln_vocab_exits_4_with_the_last_good_checkpoint(
    make_recipe: Any, write_recipe: Any, tmp_path: Path
) -> None:
    """LoRA at a learning rate of 1000 saturates the tiny model into a uniform prediction."""
    training = {"max_steps": 30, "save_steps": 1, "save_total_limit": 30, "learning_rate": 1e3}
    path = write_recipe(lora_sft(make_recipe, **training))
    run_dir = tmp_path / "run"
    done = run_unsloth("run", str(path), "--output", str(run_dir))
    assert done.returncode == 4, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "error: training diverged at step " in done.stderr
    assert "loss is 6.238" in done.stderr and "at ln(vocab_size)" in done.stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["status"], status["reason"], status["metric"]) == ("failed", "diverged", "loss")
    latest = (run_dir / "checkpoints" / "LATEST").read_text().strip()
    assert status["checkpoint"] == f"checkpoints/{latest}"
    assert f"the last good checkpoint is checkpoints/{latest}" in done.stderr
    assert not (run_dir / "final").exists()
