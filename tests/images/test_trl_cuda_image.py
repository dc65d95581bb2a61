"""The trl cuda image, built here and in CI, checked on a host without a GPU: its stack is the CUDA
build with bitsandbytes and consistent; a QLoRA recipe stops before training with the refusal a
user gets on a CPU host (exit 3, no run files); and the runner's own 4-bit loader works in the image
(bitsandbytes 0.50 quantizes on the CPU too), down to LoRA steps on the quantized tiny model."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml
from image_helpers import docker, tiny_sft_copy

from aligntune.core.rundir import MARKER

pytestmark = pytest.mark.docker

LOCK = Path(__file__).resolve().parents[2] / "images" / "trl-runner" / "requirements-cuda.lock"


def locked_versions() -> dict[str, str]:
    lines = LOCK.read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def test_labels_and_the_locked_cuda_stack_with_bitsandbytes(trl_cuda_image: str) -> None:
    (info,) = json.loads(docker("image", "inspect", trl_cuda_image).stdout)
    labels = info["Config"]["Labels"]
    assert (labels["org.aligntune.backend"], labels["org.aligntune.device"]) == ("trl", "cuda")
    assert labels["org.aligntune.lock-sha256"] == hashlib.sha256(LOCK.read_bytes()).hexdigest()
    check = docker("run", "--rm", "--entrypoint", "pip", trl_cuda_image, "check")
    assert check.returncode == 0 and "No broken requirements found." in check.stdout
    probe = (
        "import json, torch, bitsandbytes; print(json.dumps({'torch': torch.__version__, "
        "'cuda': torch.version.cuda, 'bitsandbytes': bitsandbytes.__version__}))"
    )
    done = docker("run", "--rm", "--entrypoint", "python", trl_cuda_image, "-c", probe)
    assert done.returncode == 0
    versions = json.loads(done.stdout.strip().splitlines()[-1])
    lock = locked_versions()
    assert "+cpu" not in versions["torch"] and versions["cuda"], versions
    assert versions["torch"].split("+")[0] == lock["torch"]
    assert versions["bitsandbytes"] == lock["bitsandbytes"]


def qlora_recipe(tmp_path: Path) -> Path:
    """The tiny SFT recipe as QLoRA (4-bit base, LoRA adapters), 3 steps."""
    recipe = tiny_sft_copy(tmp_path, "qlora.yaml", max_steps=3, save_steps=3)
    data = yaml.safe_load(recipe.read_text())
    data["model"]["quantization"] = "4bit"
    recipe.write_text(yaml.safe_dump(data))
    return recipe


def test_qlora_run_without_a_gpu_is_refused_before_training(
    trl_cuda_image: str, tmp_path: Path
) -> None:
    recipe = qlora_recipe(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    done = docker(
        "run",
        "--rm",
        "--init",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "-v",
        f"{recipe.parent}:/aligntune/recipe:ro",
        "-v",
        f"{run_dir}:/aligntune/run",
        trl_cuda_image,
        "run",
        "/aligntune/recipe/qlora.yaml",
        "--output",
        "/aligntune/run",
    )
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        "error: model.quantization '4bit' (QLoRA) needs a CUDA GPU; none is usable here",
        "hint: set model.quantization: none to train LoRA in full precision",
    ]
    # The runner's claim on the folder it was handed stays; nothing of a run was written.
    assert [p.name for p in run_dir.iterdir()] == [MARKER]


# What the runner does for QLoRA up to the trainer: its loader (4-bit base via bitsandbytes, then
# peft's k-bit preparation), LoRA on every linear layer, then optimizer steps on the CPU.
LOAD_AND_STEP = """
import json, torch, bitsandbytes as bnb
from peft import LoraConfig, get_peft_model
from aligntune.runners.common.models import load_causal_lm
init = {"dtype": "float32", "quantization": "4bit"}
model = load_causal_lm("/aligntune/recipe/model", init, "model.name_or_path")
four_bit = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear"))
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
batch = torch.arange(64).reshape(4, 16)
losses = []
for _ in range(3):
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    losses.append(loss.item())
print(json.dumps({"device": str(model.device), "four_bit": four_bit, "losses": losses}))
"""


def test_the_runner_loads_the_tiny_model_in_4_bit_and_trains_lora_on_the_cpu(
    trl_cuda_image: str, tmp_path: Path
) -> None:
    recipe = qlora_recipe(tmp_path)
    done = docker(
        "run",
        "--rm",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "-v",
        f"{recipe.parent}:/aligntune/recipe:ro",
        "--entrypoint",
        "python",
        trl_cuda_image,
        "-c",
        LOAD_AND_STEP,
    )
    assert done.returncode == 0
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["device"] == "cpu"
    config = json.loads((recipe.parent / "model" / "config.json").read_text())
    assert result["four_bit"] == 7 * config["num_hidden_layers"]  # q k v o gate up down
    assert result["losses"][-1] < result["losses"][0]
