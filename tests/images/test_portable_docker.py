"""A docker run's outputs are the user's: the run directory names the model and data by their
host paths, never the container's, and final/ loads on the host with plain peft."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from image_helpers import tiny_sft_copy

pytestmark = pytest.mark.docker

OUTPUTS = ("recipe.resolved.yaml", "manifest.json", "trainer_settings.json", "status.json")


def test_final_of_a_docker_run_loads_on_the_host(
    trl_cpu_image: str, tmp_path: Path, aligntune: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    recipe = tiny_sft_copy(tmp_path, "portable.yaml", max_steps=4, save_steps=2)
    run_dir = tmp_path / "run"
    result = aligntune("run", str(recipe), "--output", str(run_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    final = run_dir / "final"
    named = [*OUTPUTS, "events.jsonl", *(str(p.relative_to(run_dir)) for p in final.iterdir())]
    named += [str(p.relative_to(run_dir)) for p in run_dir.glob("checkpoints/*/*.json")]
    named += [str(p.relative_to(run_dir)) for p in run_dir.glob("checkpoints/*/README.md")]
    texts = {
        name: (run_dir / name).read_text(encoding="utf-8")
        for name in named
        if not name.endswith((".safetensors", ".bin", ".pt", ".pth"))
    }
    assert [name for name, text in texts.items() if "/aligntune/" in text] == []
    resolved = yaml.safe_load(texts["recipe.resolved.yaml"])
    assert resolved["model"]["name_or_path"] == str(recipe.parent / "model")
    assert resolved["output"]["dir"] == str(run_dir)
    adapter = json.loads(texts["final/adapter_config.json"])
    assert adapter["base_model_name_or_path"] == str(recipe.parent / "model")
    model = AutoPeftModelForCausalLM.from_pretrained(final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    turns = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        turns, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    stops = json.loads(texts["final/generation_config.json"])["eos_token_id"]
    assert tokenizer.eos_token_id in (stops if isinstance(stops, list) else [stops])
