"""Training that goes wrong stops: real runs of the tiny model forced to diverge."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback
from trl_helpers import make_run, read_events, run_cli

from aligntune.core.errors import ExitCode
from aligntune.runners.common.divergence import LIMITS
from aligntune.runners.common.errors import TrainingDivergedError

pytestmark = pytest.mark.training

FULL = {"peft": {"method": "full"}}


def diverged_status(run_dir: Path, metric: str) -> dict[str, Any]:
    """status.json and the end event of a diverged run agree; the status."""
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["status"], status["reason"], status["metric"]) == ("failed", "diverged", metric)
    end = read_events(run_dir)[-1]
    assert end["event"] == "end" and end["error"] == status["error"]
    assert not (run_dir / "final").exists()
    return status


def checkpoint_steps(run_dir: Path) -> list[int]:
    """The steps of the checkpoints left in the run directory."""
    found = (run_dir / "checkpoints").glob("checkpoint-*")
    return sorted(int(path.name.split("-")[1]) for path in found)


def test_an_exploding_loss_exits_4_and_keeps_the_last_good_checkpoint(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    """A learning rate of 100 takes the loss from 6.3 to ~1e5 in one step, never to NaN."""
    training = {"learning_rate": 100.0, "max_steps": 10, "save_steps": 1}
    recipe = tiny_recipe("sft", model=FULL, training=training)
    run_dir = tmp_path / "run"
    done = run_cli("run", str(recipe), "--output", str(run_dir))
    assert done.returncode == ExitCode.DIVERGED, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "error: training diverged at step 2: loss is " in done.stderr
    assert f"above {LIMITS.explosion_factor:g} x 6.2" in done.stderr
    assert "the last good checkpoint is checkpoints/checkpoint-1" in done.stderr
    assert "hint: lower training.learning_rate" in done.stderr
    status = diverged_status(run_dir, "loss")
    assert status["step"] == 2 and status["checkpoint"] == "checkpoints/checkpoint-1"
    assert checkpoint_steps(run_dir) == [1]
    assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == "checkpoint-1"


def test_a_loss_stuck_at_ln_vocab_stops_and_withdraws_the_stuck_checkpoints(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    """LoRA at a learning rate of 1000 saturates: the tiny model predicts all 512 tokens alike."""
    training = {"learning_rate": 1000.0, "max_steps": 30, "save_steps": 1, "save_total_limit": 30}
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as caught:
        make_run(tiny_recipe("sft", training=training), run_dir).train()
    assert caught.value.exit_code == ExitCode.DIVERGED
    assert f"ln(vocab_size) = 6.238 for {LIMITS.uniform_logs} logs" in str(caught.value)
    status = diverged_status(run_dir, "loss")
    stuck_from = status["step"] - LIMITS.uniform_logs + 1
    left = checkpoint_steps(run_dir)
    # Every checkpoint saved while the loss sat there is gone; the newest before is named.
    assert left and max(left) < stuck_from < status["step"] < 30
    assert status["checkpoint"] == f"checkpoints/checkpoint-{max(left)}"
    assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == f"checkpoint-{max(left)}"


def test_rewards_that_are_all_none_stop_a_grpo_run(
    tiny_recipe: Callable[..., Path], tiny_dir: Path, tmp_path: Path
) -> None:
    (tiny_dir / "unscorable.py").write_text(
        "def nothing(completions, **kwargs):\n    return [None] * len(completions)\n"
    )
    recipe = tiny_recipe(
        "grpo",
        rewards=[{"function": "unscorable:nothing"}],
        training={"max_steps": 3, "save_steps": 1, "batch_size": 4},
    )
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as caught:
        make_run(recipe, run_dir).train()
    message = str(caught.value)
    assert message.startswith("training diverged at step 1: reward is None")
    assert "every reward function returned None" in message
    assert "no good checkpoint is left" in message and "rewards" in (caught.value.hint or "")
    assert diverged_status(run_dir, "reward")["checkpoint"] is None
    assert checkpoint_steps(run_dir) == []


class DestroyAtEnd(TrainerCallback):
    """What a bad last optimizer step leaves: weights that are NaN when training returns."""

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        for param in model.parameters():
            if param.requires_grad:
                param.data.fill_(float("inf"))


def test_a_destroyed_model_is_not_published_as_final(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", training={"max_steps": 4, "save_steps": 2})
    run_dir = tmp_path / "run"
    run = make_run(recipe, run_dir)
    run.trainer.callback_handler.callbacks.insert(0, DestroyAtEnd())
    with pytest.raises(TrainingDivergedError, match="at step 4: a trainable weight is NaN"):
        run.train()
    status = diverged_status(run_dir, "weights")
    # The step-4 checkpoint's weights were checked when it was saved, before the damage.
    assert status["checkpoint"] == "checkpoints/checkpoint-4"
    assert checkpoint_steps(run_dir) == [2, 4]
