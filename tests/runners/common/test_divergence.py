"""The divergence rules on made-up log sequences: what stops a run, what warns, what passes."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aligntune.core.algorithm_sections import (
    DPOAlgorithm,
    GroupRLAlgorithm,
    PPOAlgorithm,
    SFTAlgorithm,
)
from aligntune.runners.common.divergence import LIMITS, Finding, Limits, Watch

VOCAB = 512
UNIFORM = math.log(VOCAB)
SFT = SFTAlgorithm(name="sft")
DPO = DPOAlgorithm(name="dpo")
GRPO = GroupRLAlgorithm(name="grpo")


def feed(
    algorithm: Any, logs: list[dict[str, Any]], every: int = 1, start: int = 0, **limits: Any
) -> list[Finding]:
    """Every finding of a run that logs `logs` every `every` steps from step `start`."""
    watch = Watch(algorithm, Limits(**limits))
    watch.begin(start, VOCAB)
    found: list[Finding] = []
    for index, log in enumerate(logs, start=1):
        found += watch.observe(start + index * every, log)
    return found


def losses(*values: float) -> list[dict[str, Any]]:
    """Training logs carrying these losses."""
    return [{"loss": value, "learning_rate": 1e-4} for value in values]


def test_a_loss_that_learns_and_wobbles_passes() -> None:
    wobbly = [2.0 - i * 0.01 + (0.5 if i % 7 == 0 else 0.0) for i in range(200)]
    assert feed(SFT, losses(*wobbly)) == []
    assert feed(DPO, losses(*[math.log(2)] * 5, 3.0, 0.1)) == []


def test_a_loss_far_above_its_early_median_stops() -> None:
    early = [2.0, 2.2, 1.8, 2.1, 1.9]  # median 2.0
    found = feed(SFT, losses(*early, 1.5, 20.5), every=5)
    assert len(found) == 1 and found[0].stops
    assert (found[0].metric, found[0].value, found[0].step) == ("loss", 20.5, 35)
    assert found[0].since == 31  # the log averages steps 31..35
    assert "loss is 20.5, above 10 x 2 (the median of the first 5 logged losses)" in (
        found[0].message
    )


def test_the_explosion_threshold_is_exactly_factor_times_the_median() -> None:
    early = [2.0] * LIMITS.baseline_logs
    limit = LIMITS.explosion_factor * 2.0
    assert feed(SFT, losses(*early, limit)) == []
    assert [f.value for f in feed(SFT, losses(*early, limit * 1.001))] == [limit * 1.001]


def test_the_baseline_is_the_first_logs_not_the_recent_ones() -> None:
    """A loss that fell to 0.1 and rose to 1.5 is noisy, not exploded (15x recent, < 10x early)."""
    assert feed(SFT, losses(2.0, 2.0, 2.0, 2.0, 2.0, *[0.1] * 50, 1.5)) == []


def test_an_explosion_before_the_baseline_is_complete_still_stops() -> None:
    found = feed(SFT, losses(6.256, 116629.0))
    assert found[0].step == 2 and "the first logged loss" in found[0].message


def test_policy_gradient_losses_have_no_explosion_rule() -> None:
    assert feed(GRPO, losses(1e-4, 1e-4, 0.0, 2e-4, 1e-4, 0.5, -3.0)) == []
    ppo = PPOAlgorithm(name="ppo", reward_model="rm")
    assert feed(ppo, losses(0.01, 0.02, 0.01, 0.01, 0.01, 4.0)) == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_stops_at_once(bad: float) -> None:
    for algorithm in (SFT, DPO, GRPO):
        found = feed(algorithm, losses(2.0, bad))
        assert [(f.metric, f.step, f.stops) for f in found] == [("loss", 2, True)]


@pytest.mark.parametrize("missing", [None, math.nan])
def test_a_reward_of_none_or_nan_says_no_completion_was_scored(missing: float | None) -> None:
    logs = [{"loss": 0.0, "reward": 0.5}, {"loss": 0.0, "reward": missing}]
    found = feed(GRPO, logs)
    assert [(f.metric, f.step) for f in found] == [("reward", 2)]
    assert f"reward is {missing}" in found[0].message and "returned None" in found[0].message
    assert "rewards" in found[0].hint


def test_a_nan_eval_loss_stops_and_blames_only_that_step() -> None:
    watch = Watch(SFT)
    watch.begin(0, VOCAB)
    assert watch.observe(10, {"loss": 2.0}) == []
    found = watch.observe(10, {"eval_loss": math.nan}, evaluation=True)
    assert [(f.metric, f.step, f.since) for f in found] == [("eval_loss", 10, 10)]


def test_a_loss_stuck_at_ln_vocab_stops_after_the_stretch() -> None:
    stuck = [UNIFORM] * LIMITS.uniform_logs
    found = feed(SFT, losses(3.0, *stuck))
    assert len(found) == 1
    assert found[0].step == LIMITS.uniform_logs + 1 and found[0].since == 2
    assert f"at ln(vocab_size) = {UNIFORM:.4g} for {LIMITS.uniform_logs} logs" in found[0].message


def test_a_stretch_at_ln_vocab_that_ends_in_time_passes() -> None:
    near = UNIFORM * (1 + LIMITS.uniform_tolerance / 2)
    short = [near] * (LIMITS.uniform_logs - 1)
    assert feed(SFT, losses(*short, 5.0, *short, 5.0)) == []


def test_a_loss_just_outside_the_tolerance_is_not_uniform() -> None:
    off = UNIFORM * (1 + LIMITS.uniform_tolerance * 2)
    assert feed(SFT, losses(*[off] * (LIMITS.uniform_logs * 3))) == []


def test_only_a_token_cross_entropy_is_compared_with_ln_vocab() -> None:
    assert feed(DPO, losses(*[UNIFORM] * (LIMITS.uniform_logs * 2))) == []
    unknown = Watch(SFT)
    unknown.begin(0, None)  # the model did not say its vocabulary size
    assert unknown.observe(1, {"loss": UNIFORM}) == []


def test_rewards_that_never_vary_in_a_group_warn_once_per_stretch() -> None:
    flat = {"loss": 0.0, "reward": 0.0, "frac_reward_zero_std": 1.0}
    varied = dict(flat, frac_reward_zero_std=0.5)
    n = LIMITS.flat_reward_logs
    found = feed(GRPO, [varied] + [flat] * (2 * n) + [varied] + [flat] * n)
    assert [(f.metric, f.step, f.since, f.stops) for f in found] == [
        ("frac_reward_zero_std", n + 1, 2, False),
        ("frac_reward_zero_std", 2 * n + 2 + n, 2 * n + 3, False),
    ]
    assert "got the same reward" in found[0].message


def test_steps_are_counted_from_where_a_resumed_run_starts() -> None:
    found = feed(SFT, losses(2.0, math.nan), every=10, start=100)
    assert [(f.step, f.since) for f in found] == [(120, 111)]


def test_the_thresholds_come_from_one_record() -> None:
    assert feed(SFT, losses(2.0, 5.0), explosion_factor=2.0)[0].value == 5.0
    assert feed(SFT, losses(*[UNIFORM] * 3), uniform_logs=3)[0].step == 3


def test_the_readme_names_every_threshold() -> None:
    """The run-directory contract documents the rules by the names of their thresholds."""
    readme = Path(__file__).resolve().parents[3] / "packages/runner-common/README.md"
    text = readme.read_text(encoding="utf-8")
    assert [f.name for f in dataclasses.fields(Limits) if f"`{f.name}`" not in text] == []


def test_importing_the_rules_loads_no_training_stack() -> None:
    code = (
        "import sys\n"
        "import aligntune.runners.common.divergence\n"
        "heavy = [m for m in ('torch', 'trl', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_withdrawing_keeps_only_checkpoints_from_before_the_bad_step(tmp_path: Path) -> None:
    from aligntune.runners.common import checkpoints
    from aligntune.runners.common.callbacks import last_good, withdraw

    root = tmp_path / "checkpoints"
    for step in (2, 4, 6):
        staged = checkpoints.staging_dir(root) / f"checkpoint-{step}"
        staged.mkdir(parents=True)
        (staged / "trainer_state.json").write_text("{}")
        checkpoints.publish(staged, root, step)
    withdraw(root, since=5)
    assert sorted(p.name for p in root.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert (root / "LATEST").read_text().strip() == "checkpoint-4"
    assert last_good(root, since=4) == root / "checkpoint-2"
    withdraw(root, since=1)
    assert not list(root.glob("checkpoint-*")) and not (root / "LATEST").exists()
