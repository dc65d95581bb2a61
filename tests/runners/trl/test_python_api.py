"""The seed's Python API with a local model folder and local data files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from aligntune.core.backend_factory import create_rl_trainer, create_sft_trainer

pytestmark = pytest.mark.training


def ends_in_digit(completions, **kwargs):
    """1.0 when a completion ends in a digit."""
    return [1.0 if str(c).strip()[-1:].isdigit() else 0.0 for c in completions]


@pytest.mark.parametrize("backend", ["trl", "auto"])
def test_create_sft_trainer(backend: str, tiny_dir: Path, tmp_path: Path) -> None:
    trainer = create_sft_trainer(
        model_name=str(tiny_dir / "model"),
        dataset_name=str(tiny_dir / "data" / "sft.jsonl"),
        backend=backend,
        output_dir=str(tmp_path / "out"),
        max_steps=3,
        batch_size=4,
        learning_rate=5e-3,
        max_seq_length=64,
        max_samples=16,
        system_prompt="You answer with one short sentence.",
        eval_fraction=0.25,
    )
    metrics = trainer.train()
    assert metrics["status"] == "finished" and metrics["global_step"] == 3
    assert "eval_loss" in trainer.evaluate()
    answers = trainer.predict(["What is the capital of France?"])
    assert len(answers) == 1 and isinstance(answers[0], str)
    saved = trainer.save_model(tmp_path / "export")
    assert (saved / "adapter_model.safetensors").is_file()
    assert (tmp_path / "out" / "final").is_dir()


def test_create_rl_trainer_dpo(tiny_dir: Path, tmp_path: Path) -> None:
    trainer = create_rl_trainer(
        model_name=str(tiny_dir / "model"),
        dataset_name=str(tiny_dir / "data" / "dpo.jsonl"),
        algorithm="dpo",
        backend="trl",
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        batch_size=4,
        beta=0.2,
    )
    assert trainer.settings["config_kwargs"]["beta"] == 0.2
    assert trainer.train()["global_step"] == 2


def test_create_rl_trainer_grpo_with_callable_and_builtin(tiny_dir: Path, tmp_path: Path) -> None:
    trainer = create_rl_trainer(
        model_name=str(tiny_dir / "model"),
        dataset_name=str(tiny_dir / "data" / "grpo.jsonl"),
        algorithm="dr_grpo",
        backend="auto",
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        batch_size=4,
        num_generations=4,
        max_completion_length=8,
        reward_functions=[ends_in_digit, "numeric_match"],
        reward_function_weights=[1.0, 2.0],
    )
    config = trainer.settings["config_kwargs"]
    assert config["loss_type"] == "dr_grpo" and config["scale_rewards"] == "none"
    assert config["reward_weights"] == [1.0, 2.0]
    metrics = trainer.train()
    assert "rewards/ends_in_digit/mean" in metrics


def test_importing_the_runner_never_imports_unsloth() -> None:
    code = (
        "import sys, aligntune.runners.trl as r\n"
        "from aligntune.runners.trl import trainer, cli\n"
        "r.create_trainer\n"
        "assert 'unsloth' not in sys.modules and 'unsloth_zoo' not in sys.modules\n"
        "print('clean')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def test_a_config_keeps_the_fields_the_call_leaves_out(
    tiny_recipe: Callable[..., Path], tiny_dir: Path, tmp_path: Path
) -> None:
    config = tiny_recipe("sft", output={"dir": str(tmp_path / "configured")})
    trainer = create_sft_trainer(
        model_name=str(tiny_dir / "model"),
        dataset_name=str(tiny_dir / "data" / "sft.jsonl"),
        config=config,
        learning_rate=1e-3,
    )
    recipe = trainer.recipe
    # The config's values, not the signature's defaults (batch_size=4, max_seq_length=512, ...).
    assert recipe.training.batch_size == 8 and recipe.training.max_steps == 30
    assert recipe.training.epochs == 1.0 and recipe.data.max_length == 64
    assert trainer.run_dir.root == tmp_path / "configured"
    assert recipe.training.learning_rate == 1e-3  # what the call passed wins


def test_without_a_config_the_signature_defaults_apply(tiny_dir: Path, tmp_path: Path) -> None:
    trainer = create_sft_trainer(
        model_name=str(tiny_dir / "model"),
        dataset_name=str(tiny_dir / "data" / "sft.jsonl"),
        backend="trl",
        output_dir=str(tmp_path / "out"),
    )
    recipe = trainer.recipe
    assert (recipe.training.epochs, recipe.training.batch_size) == (3, 4)
    assert recipe.data.max_length == 512 and recipe.training.learning_rate == 2e-4
