"""Real training through the Unsloth runner, in Unsloth's CPU mode, one subprocess per run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from unsloth_helpers import TRL_PYTHON, needs_unsloth_venv, run_unsloth

from aligntune.core.algorithms import ALGORITHMS

pytestmark = [pytest.mark.training, needs_unsloth_venv]

# Short runs for a 2-core CI machine; the algorithms without an entry take the first one's.
SHORTER: dict[str, dict[str, Any]] = {
    "sft": {"training": {"max_steps": 3, "save_steps": 2, "learning_rate": 1e-2}},
    "ppo": {
        "training": {"max_steps": 2, "save_steps": 1, "learning_rate": 1e-2},
        "algorithm": {"response_length": 8, "num_ppo_epochs": 1},
    },
    "grpo": {"training": {"max_steps": 2, "save_steps": 1, "learning_rate": 1e-2}},
    "dapo": {"training": {"max_steps": 2, "save_steps": 1, "learning_rate": 1e-2}},
    "dr_grpo": {"training": {"max_steps": 2, "save_steps": 1, "learning_rate": 1e-2}},
}
SHORT = {
    a.name: SHORTER.get(a.name, SHORTER["sft"])
    for a in ALGORITHMS
    if "cpu" in a.verified.get("unsloth", ())
}
"""Every algorithm the registry says Unsloth was verified to train on CPU."""
GROUP_RL = ("grpo", "dapo", "dr_grpo")


def recipe_for(make_recipe: Any, algorithm: str) -> dict[str, Any]:
    """The shared tiny recipe for `algorithm`, shortened, with backend unsloth."""
    recipe = make_recipe(algorithm, backend="unsloth")
    for section, values in SHORT[algorithm].items():
        recipe.setdefault(section, {}).update(values)
    recipe["model"]["peft"] = {"method": "lora", "r": 8, "alpha": 16}
    if algorithm in GROUP_RL:
        recipe["algorithm"]["max_completion_length"] = 8
    return recipe


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Every event of a run."""
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def check_run_dir(run_dir: Path, algorithm: str) -> list[dict[str, Any]]:
    """The run directory of a finished run is complete; its events."""
    for name in ("plan.json", "recipe.resolved.yaml", "manifest.json", "trainer_settings.json"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    assert (run_dir / "final" / "adapter_model.safetensors").is_file()
    assert (run_dir / "final" / "tokenizer.json").is_file()
    latest = (run_dir / "checkpoints" / "LATEST").read_text().strip()
    assert (run_dir / "checkpoints" / latest / "aligntune_checkpoint.json").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["backend"] == "unsloth"
    assert manifest["packages"]["unsloth"] == "2026.10.9"
    events = read_events(run_dir)
    assert events[0]["event"] == "start" and events[0]["backend"] == "unsloth"
    assert events[0]["algorithm"] == algorithm and events[-1]["status"] == "finished"
    logs = [e for e in events if e["event"] == "log"]
    assert logs and all(isinstance(e["loss"], float) for e in logs)
    check_report(run_dir, algorithm)
    return events


def check_report(run_dir: Path, algorithm: str) -> None:
    """The runner drew the report (matplotlib is in this runner's lock too) and, where the data
    has prompts (PPO's are tokenized up front), answered samples before and after."""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == "unsloth" and summary["algorithm"] == algorithm
    assert summary["metrics"]["loss"]["last_step"] == summary["steps"]
    assert (run_dir / "plots" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## How to load" in (run_dir / "final" / "README.md").read_text()
    if algorithm != "ppo":
        lines = (run_dir / "samples.jsonl").read_text().splitlines()
        assert {json.loads(line)["model"] for line in lines} == {"base", "trained"}


def untrained_adapters(final: Path) -> list[str]:
    """LoRA B matrices still at their zero init (only a gradient step moves them)."""
    from safetensors.torch import load_file

    weights = load_file(str(final / "adapter_model.safetensors"))
    b_names = [name for name in weights if "lora_B" in name]
    assert b_names, "the adapter has no LoRA B weights"
    return [name for name in b_names if not weights[name].abs().sum().item() > 0]


def trl_settings(recipe_path: Path) -> dict[str, Any]:
    """The TRL runner's resolved settings for the same recipe (pure translation, in .venv)."""
    script = (
        "import json, sys\n"
        "from aligntune.core.loader import load_recipe\n"
        "from aligntune.core.selection import HostInfo, select_backend\n"
        "from aligntune.runners.common.settings import resolve_settings\n"
        "recipe = load_recipe(sys.argv[1])\n"
        "host = HostInfo(runner_packages=frozenset({'trl'}))\n"
        "plan = select_backend(recipe, host, backend='trl', runtime='in-process')\n"
        "print(json.dumps(resolve_settings(recipe, plan, 'X').to_json(), default=str))\n"
    )
    done = subprocess.run(
        [str(TRL_PYTHON), "-c", script, str(recipe_path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"TRL runner not importable in {TRL_PYTHON}: {done.stderr[-500:]}")
    return json.loads(done.stdout)


@pytest.mark.parametrize("algorithm", list(SHORT))
def test_trains_in_cpu_mode(
    algorithm: str, make_recipe: Any, write_recipe: Any, tmp_path: Path
) -> None:
    """Loss logged, LoRA weights moved, run directory complete, CPU-mode warning printed."""
    path = write_recipe(recipe_for(make_recipe, algorithm))
    run_dir = tmp_path / "run"
    done = run_unsloth("run", str(path), "--output", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trains in its CPU mode" in done.stderr
    events = check_run_dir(run_dir, algorithm)
    clipped = [e.get("completions/clipped_ratio") for e in events if e["event"] == "log"]
    if algorithm == "dapo" and all(ratio == 1.0 for ratio in clipped):
        # DAPO masks truncated completions; a random tiny model never emits EOS in 8 tokens,
        # so every completion is masked and no gradient exists. The objective is still DAPO's.
        return
    assert untrained_adapters(run_dir / "final") == []


@pytest.mark.parametrize("algorithm", GROUP_RL)
def test_group_rl_settings_equal_trl_runner(
    algorithm: str, make_recipe: Any, write_recipe: Any, tmp_path: Path
) -> None:
    """trainer_settings.json's GRPO-family settings are the TRL runner's for the same recipe."""
    recipe = recipe_for(make_recipe, algorithm)
    recipe["training"]["max_steps"] = 1
    path = write_recipe(recipe)
    run_dir = tmp_path / "run"
    done = run_unsloth("run", str(path), "--output", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    ours = json.loads((run_dir / "trainer_settings.json").read_text())
    theirs = trl_settings(path)
    for settings in (ours, theirs):
        settings["config_kwargs"].pop("output_dir")
    assert ours["config_kwargs"] == theirs["config_kwargs"]
    assert ours["model_init"] == theirs["model_init"] and ours["peft"] == theirs["peft"]
    assert ours["unsloth"]["get_peft_model"]["r"] == 8
