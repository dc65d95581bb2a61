"""The rules that tell a run going wrong from a run learning, judged on its logged metrics alone.

No torch here: `Watch` reads the numbers each log event carries (aligntune's names: `loss`,
`reward`, ...), so the rules are tested on made-up log sequences. A `Finding` that stops the run
names the metric, its value, the step, and the first step its evidence covers: a checkpoint
saved at or after that step is not a good one.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from aligntune.core.algorithm_sections import DPOAlgorithm, SFTAlgorithm


@dataclass(frozen=True)
class Limits:
    """Every threshold of the rules (the runner-common README names these fields)."""

    baseline_logs: int = 5
    """The loss baseline is the median of this many first logged losses (fewer until then)."""
    explosion_factor: float = 10.0
    """A logged loss above explosion_factor x the baseline has exploded."""
    uniform_logs: int = 10
    """This many logged losses in a row at ln(vocab_size): the model predicts nothing."""
    uniform_tolerance: float = 1e-3
    """How near ln(vocab_size), relative to it, a loss counts as at it."""
    flat_reward_logs: int = 20
    """This many logs in a row in which no group's rewards varied: a warning (nothing to learn)."""


LIMITS = Limits()

NON_FINITE_WATCHED = {
    "loss": "",
    "reward": " (no completion got a finite reward: every reward function returned None or NaN)",
    "eval_loss": "",
}
"""Metrics that stop the run when None, NaN or infinite, with what that means."""
EXPLODING_LOSSES: tuple[type, ...] = (SFTAlgorithm, DPOAlgorithm)
"""Algorithms whose loss is a non-negative log-likelihood, so a multiple of its start means
divergence (policy-gradient losses of PPO and the GRPO family have no fixed sign or scale; KTO's
lies between 0 and its weights)."""
CROSS_ENTROPY_LOSSES: tuple[type, ...] = (SFTAlgorithm,)
"""Algorithms whose loss is the token cross-entropy, ln(vocab_size) for a uniform prediction."""
FLAT_REWARD_METRIC = "frac_reward_zero_std"
"""The GRPO family's share of groups whose completions all got the same reward."""


@dataclass(frozen=True)
class Finding:
    """What a rule found: a reason to stop the run (or, when not `stops`, to warn)."""

    metric: str
    value: Any
    step: int
    since: int
    """The first step the evidence covers; checkpoints saved from this step on are not good."""
    message: str
    stops: bool = True

    @property
    def hint(self) -> str:
        """What to change in the recipe."""
        return HINTS.get(self.metric, HINTS["loss"])


HINTS = {
    "loss": "lower training.learning_rate (or training.max_grad_norm)",
    "reward": "check the recipe's rewards: each must return a number for most completions",
    FLAT_REWARD_METRIC: "check the recipe's rewards, or raise algorithm.num_generations",
}


def finding(
    metric: str, value: Any, step: int, since: int, detail: str, stops: bool = True
) -> Finding:
    """A Finding whose message reads "METRIC is VALUE" + `detail`."""
    shown = f"{value:.6g}" if isinstance(value, float) else str(value)
    return Finding(metric, value, step, since, f"{metric} is {shown}{detail}", stops)


def number(value: Any) -> Any:
    """A tensor or numpy scalar as a plain Python number; anything else unchanged."""
    return value.item() if hasattr(value, "item") else value


def is_finite(value: Any) -> bool:
    """False for None (TRL logs a mean of only NaNs as None), NaN and the infinities."""
    value = number(value)
    return value is not None and (not isinstance(value, float) or math.isfinite(value))


class Watch:
    """Reads each log of one training attempt in order and applies every rule to it."""

    def __init__(self, algorithm: object, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.explodes = isinstance(algorithm, EXPLODING_LOSSES)
        self.cross_entropy = isinstance(algorithm, CROSS_ENTROPY_LOSSES)
        self.uniform_loss: float | None = None
        self.last_step = 0
        self.baseline: list[float] = []
        self.uniform_since: list[int] = []
        self.flat_since: list[int] = []

    def begin(self, step: int, vocab_size: int | None) -> None:
        """Training starts (or resumes) at `step` with a model of `vocab_size` output tokens."""
        self.last_step = step
        if self.cross_entropy and vocab_size:
            self.uniform_loss = math.log(vocab_size)

    def observe(self, step: int, logs: dict[str, Any], evaluation: bool = False) -> list[Finding]:
        """The findings in one log event (aligntune's metric names); stopping ones first."""
        # A training log averages the steps since the previous one; an evaluation sees this step.
        since = step if evaluation else self.last_step + 1
        found = [
            finding(key, number(logs[key]), step, since, meaning)
            for key, meaning in NON_FINITE_WATCHED.items()
            if key in logs and not is_finite(logs[key])
        ]
        if not evaluation:
            self.last_step = step
            if not found and isinstance(number(logs.get("loss")), float):
                found += self._loss_rules(step, since, number(logs["loss"]))
            if FLAT_REWARD_METRIC in logs:
                found += self._flat_reward(step, since, number(logs[FLAT_REWARD_METRIC]))
        return sorted(found, key=lambda found_one: not found_one.stops)

    def _loss_rules(self, step: int, since: int, loss: float) -> list[Finding]:
        limits = self.limits
        found = []
        if self.explodes and self.baseline:
            base = statistics.median(self.baseline)
            if loss > limits.explosion_factor * base:
                count = len(self.baseline)
                basis = f"the median of the first {count} logged losses"
                if count == 1:
                    basis = "the first logged loss"
                what = f", above {limits.explosion_factor:g} x {base:.4g} ({basis})"
                found.append(finding("loss", loss, step, since, what))
        if len(self.baseline) < limits.baseline_logs:
            self.baseline.append(loss)
        uniform = self.uniform_loss
        if uniform is not None and abs(loss - uniform) <= limits.uniform_tolerance * uniform:
            self.uniform_since.append(since)
            if len(self.uniform_since) >= limits.uniform_logs:
                what = (
                    f", at ln(vocab_size) = {uniform:.4g} for {len(self.uniform_since)} logs "
                    f"since step {self.uniform_since[0]}: the model predicts every token as "
                    "equally likely"
                )
                found.append(finding("loss", loss, step, self.uniform_since[0], what))
        else:
            self.uniform_since.clear()
        return found

    def _flat_reward(self, step: int, since: int, share: Any) -> list[Finding]:
        if share != 1.0:
            self.flat_since.clear()
            return []
        self.flat_since.append(since)
        if len(self.flat_since) != self.limits.flat_reward_logs:
            return []  # warn once per stretch
        what = (
            f" for {len(self.flat_since)} logs since step {self.flat_since[0]}: every "
            "completion of a prompt got the same reward, so there is nothing to learn from; "
            "check the reward functions"
        )
        return [finding(FLAT_REWARD_METRIC, share, step, self.flat_since[0], what, stops=False)]
