"""Learning, not just running: loss falls, preferences are learnt, reward rises."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from statistics import mean

import pytest
from trl_helpers import make_run, read_events

pytestmark = pytest.mark.training


def _logs(run_dir: Path) -> list[dict]:
    return [e for e in read_events(run_dir) if e["event"] == "log"]


def test_sft_loss_falls_on_a_memorisable_set(tiny_recipe: Callable[..., Path], tmp_path: Path):
    recipe = tiny_recipe(
        "sft",
        model={"peft": {"method": "full"}},
        data={"train": {"max_samples": 8}},
        training={"max_steps": 25, "learning_rate": 3e-3, "save_steps": 100},
    )
    make_run(recipe, tmp_path / "run").train()
    losses = [e["loss"] for e in _logs(tmp_path / "run")]
    assert losses[-1] < 0.7 * losses[0], losses


def test_dpo_prefers_chosen_on_its_train_set(tiny_recipe: Callable[..., Path], tmp_path: Path):
    recipe = tiny_recipe(
        "dpo",
        data={"eval": {"path": "./data/dpo.jsonl"}},
        training={"max_steps": 15, "learning_rate": 1e-2, "save_steps": 100},
    )
    run = make_run(recipe, tmp_path / "run")
    before = run.evaluate()["eval_rewards/accuracies"]
    run.train()
    after = run.evaluate()["eval_rewards/accuracies"]
    assert after >= 0.8, (before, after)


def test_kto_raises_desirable_and_lowers_undesirable(tiny_recipe: Callable[..., Path], tmp_path):
    recipe = tiny_recipe(
        "kto",
        data={"eval": {"path": "./data/kto.jsonl"}},
        training={"max_steps": 20, "learning_rate": 5e-3, "save_steps": 100},
    )
    run = make_run(recipe, tmp_path / "run")
    before = run.evaluate()
    run.train()
    after = run.evaluate()
    # Rewards are beta x the log-ratio to the reference: 0 for both kinds before training.
    assert before["eval_rewards/margins"] == pytest.approx(0.0, abs=1e-6), before
    assert after["eval_rewards/chosen"] > 0 > after["eval_rewards/rejected"], after
    assert after["eval_rewards/margins"] > 0.5, after


def test_grpo_mean_reward_rises_on_a_toy_reward(tiny_recipe: Callable[..., Path], tmp_path: Path):
    recipe = tiny_recipe(
        "grpo",
        rewards=[{"function": "rewards:digit_share"}],
        model={"peft": {"method": "full"}},
        algorithm={"max_completion_length": 8, "num_generations": 8},
        training={"max_steps": 15, "batch_size": 16, "learning_rate": 1e-2, "save_steps": 100},
    )
    make_run(recipe, tmp_path / "run").train()
    rewards = [e["reward"] for e in _logs(tmp_path / "run")]
    assert mean(rewards[-3:]) > 2 * mean(rewards[:3]), rewards
