"""`aligntune export` in the trl cpu image for real: tiny SFT and DPO LoRA runs trained in the
image, then exported (merged, and the adapter alone) in the image, and both loaded on the host."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from image_helpers import tiny_sft_copy

pytestmark = [pytest.mark.docker, pytest.mark.training]

PROMPTS = ("What is the capital of Peru?", "The capital of Kenya is")


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def logits(model: Any, folder: Path) -> Any:
    """Next-token logits of PROMPTS, stacked, with the tokenizer saved in `folder`."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        rows = [model(**tokenizer(p, return_tensors="pt")).logits[0, -1] for p in PROMPTS]
    return torch.stack(rows)


@pytest.mark.parametrize("algorithm", ["sft", "dpo"])
def test_a_docker_run_exports_a_merged_model_and_an_adapter_that_load_on_the_host(
    algorithm: str,
    trl_cpu_image: str,
    tmp_path: Path,
    aligntune: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    recipe = tiny_sft_copy(tmp_path, "recipe.yaml", algorithm, max_steps=3, save_steps=3)
    run = tmp_path / "runs" / algorithm
    merged_dir, adapter_dir = (run.parent / f"{algorithm}-{kind}" for kind in ("merged", "adapter"))
    trained = aligntune("run", str(recipe), "--output", str(run), "-q")
    assert trained.returncode == 0, trained.stderr
    before = tree(run)

    merged = aligntune("export", str(run))
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout.splitlines()[-1] == f"exported: {merged_dir}"
    assert f"in {trl_cpu_image}" in merged.stderr and "aligntune: checked:" in merged.stderr
    adapter = aligntune("export", str(run), "--format", "adapter")
    assert adapter.returncode == 0, adapter.stderr
    assert tree(run) == before, "the export changed the run directory"
    made = sorted(p.name for p in run.parent.iterdir())
    assert made == sorted([run.name, adapter_dir.name, merged_dir.name])

    base_path = recipe.parent / "model"
    base = AutoModelForCausalLM.from_pretrained(base_path)
    expected = logits(PeftModel.from_pretrained(base, run / "final").eval(), run / "final")
    model = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert float((logits(model, merged_dir) - expected).abs().max()) < 1e-4
    record = json.loads((merged_dir / "export.json").read_text())
    assert record["base"] == str(base_path) and record["source_run"] == str(run)
    assert record["check"]["max_abs_logit_diff"] <= record["check"]["tolerance"]

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_path)
    loaded = AutoPeftModelForCausalLM.from_pretrained(adapter_dir).eval()
    assert float((logits(loaded, adapter_dir) - expected).abs().max()) == 0.0
