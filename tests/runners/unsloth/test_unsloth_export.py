"""The Unsloth runner's `export`: a LoRA run trained through Unsloth (CPU mode) merges, checks
itself, and loads in the main environment with plain transformers (no Unsloth there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from unsloth_helpers import needs_unsloth_venv, run_unsloth

pytestmark = [pytest.mark.training, needs_unsloth_venv]


def test_an_unsloth_lora_run_exports_a_merged_model_plain_transformers_loads(
    make_recipe: Any, write_recipe: Any, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = make_recipe("sft", backend="unsloth")
    recipe["model"]["peft"] = {"method": "lora", "r": 8, "alpha": 16}
    recipe["training"].update({"max_steps": 3, "learning_rate": 1e-2})
    run = tmp_path / "run"
    trained = run_unsloth("run", str(write_recipe(recipe)), "--output", str(run))
    assert trained.returncode == 0, trained.stderr[-3000:]
    done = run_unsloth("export", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "aligntune: wrote the merged export" in done.stdout

    merged = tmp_path / "run-merged"
    record = json.loads((merged / "export.json").read_text())
    assert record["backend"] == "unsloth" and record["merged_weights"] == 14
    assert record["check"]["max_abs_logit_diff"] <= record["check"]["tolerance"]
    tokenizer = AutoTokenizer.from_pretrained(merged)
    ids = tokenizer("What is the capital of Japan?", return_tensors="pt").input_ids
    base = AutoModelForCausalLM.from_pretrained(recipe["model"]["name_or_path"])
    with torch.no_grad():
        expected = PeftModel.from_pretrained(base, run / "final").eval()(ids).logits[0, -1]
        got = AutoModelForCausalLM.from_pretrained(merged).eval()(ids).logits[0, -1]
    assert float((got - expected).abs().max()) < 1e-4
