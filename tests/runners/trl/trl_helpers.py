"""In-process helpers for the TRL runner tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aligntune.core.algorithms import ALGORITHM_NAMES
from aligntune.core.loader import load_recipe
from aligntune.core.plan import HostInfo
from aligntune.core.selection import select_backend

HOST = HostInfo(runner_packages=frozenset({"trl"}))

# Short enough for a 2-core CI machine, long enough for every parameter to move.
SHORTER = {
    "sft": {"training": {"max_steps": 4, "save_steps": 2}},
    "dpo": {"training": {"max_steps": 4, "save_steps": 2}},
    "ppo": {
        "training": {"max_steps": 2, "save_steps": 1},
        "algorithm": {"train_reward_model": {"max_steps": 2}, "num_ppo_epochs": 1},
    },
    "grpo": {"training": {"max_steps": 3, "save_steps": 2, "batch_size": 4}},
    "gspo": {"training": {"max_steps": 3, "save_steps": 2, "batch_size": 4}},
    # DAPO masks truncated completions: the random model must get room to emit EOS sometimes.
    "dapo": {
        "training": {"max_steps": 3, "save_steps": 2, "batch_size": 8},
        "algorithm": {"max_completion_length": 128},
        "rewards": [
            {"function": "rewards:digit_share"},
            {"function": "overlong_penalty", "params": {"max_tokens": 128, "buffer_tokens": 32}},
        ],
    },
    "dr_grpo": {"training": {"max_steps": 3, "save_steps": 2, "batch_size": 4}},
}
SHORT = {
    name: SHORTER.get(name, {"training": {"max_steps": 3, "save_steps": 2}})
    for name in ALGORITHM_NAMES
}
"""Every registered algorithm's tiny recipe, shortened: a new algorithm is trained untold."""
ALGORITHMS = tuple(SHORT)


def make_run(recipe_path: Path, run_dir: Path, mode: str = "auto") -> Any:
    """A run on TRL for a recipe file, planned for this CPU host."""
    from aligntune.runners.trl import create_trainer

    recipe = load_recipe(recipe_path)
    plan = select_backend(recipe, HOST, backend="trl", runtime="in-process")
    return create_trainer(recipe, plan, run_dir=run_dir, mode=mode)


def trainable(model: Any) -> dict[str, Any]:
    """A copy of every trainable parameter."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def changed(before: dict[str, Any], model: Any) -> list[str]:
    """Names of trainable parameters that differ from `before`."""
    import torch

    after = dict(model.named_parameters())
    return [n for n, p in before.items() if not torch.equal(p, after[n].detach())]


def check_run_dir(run_dir: Path, algorithm: str) -> list[dict[str, Any]]:
    """Assert the run directory is complete for a finished run; return its events."""
    for name in ("plan.json", "recipe.resolved.yaml", "manifest.json", "trainer_settings.json"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    resolved = load_recipe(run_dir / "recipe.resolved.yaml")  # the saved recipe is a recipe
    assert resolved.output.dir == str(run_dir)
    assert resolved.model.name_or_path == str(resolved.local_references()["model.name_or_path"])
    final = run_dir / "final"
    weights = list(final.glob("*.safetensors"))
    assert weights and (final / "tokenizer.json").is_file()
    latest = (run_dir / "checkpoints" / "LATEST").read_text().strip()
    assert (run_dir / "checkpoints" / latest / "aligntune_checkpoint.json").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["packages"]["trl"] == "1.12.0"
    assert all(len(entry["sha256"]) == 64 for entry in manifest["data"])
    events = read_events(run_dir)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and "checkpoint" in kinds
    start = events[0]
    assert start["algorithm"] == algorithm and start["backend"] == "trl"
    assert start["total_steps"] > 0
    logs = [e for e in events if e["event"] == "log"]
    assert logs and all(isinstance(e["loss"], float) for e in logs)
    assert all(e["total"] == start["total_steps"] for e in logs)
    assert events[-1]["status"] == "finished"
    return events


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m aligntune.runners.trl ARGS` in a fresh interpreter."""
    env = dict(os.environ, TRL_EXPERIMENTAL_SILENCE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(
        [sys.executable, "-m", "aligntune.runners.trl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Every event a run wrote."""
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes (to prove nothing was changed or deleted)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
