"""The algorithm registry: one frozen record per algorithm, as data.

Each record says which TRL trainer implements the algorithm, which dataset formats it accepts,
which backends run it, and the TRL settings that *define* it. Defining settings are always written
explicitly into the trainer config, never left to TRL's (or Unsloth's patched) defaults, so the
same recipe means the same objective on every backend and every library version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from aligntune.core.backends import BACKEND_NAMES, BackendName
from aligntune.core.errors import UserInputError

AlgorithmName = Literal["sft", "dpo", "kto", "ppo", "grpo", "gspo", "dapo", "dr_grpo"]
"""An algorithm's name, as recipes (`algorithm.name`), plans and events spell it."""
Scorer = Literal["none", "reward functions", "reward model"]
"""What scores the policy's samples: nothing (SFT, DPO, KTO), reward functions or a reward model."""


def _frozen(**settings: Any) -> MappingProxyType[str, Any]:
    return MappingProxyType(dict(settings))


@dataclass(frozen=True)
class PlotSpec:
    """One chart of the run report: the logged metrics it draws, by name or glob pattern."""

    name: str
    """The PNG's file name, without `.png`."""
    title: str
    unit: str
    """The y axis label."""
    series: tuple[str, ...]
    """Metric names as events.jsonl spells them; `*` matches any part (`rewards/*/mean`)."""


COMMON_PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec("loss", "Training loss", "loss", ("loss",)),
    PlotSpec("learning_rate", "Learning rate", "learning rate", ("learning_rate",)),
    PlotSpec("grad_norm", "Gradient norm (before clipping)", "L2 norm", ("grad_norm",)),
    PlotSpec("eval_loss", "Evaluation loss", "loss", ("eval_loss",)),
)
"""The charts every algorithm's report draws (each only when its metrics were logged)."""

_SFT_PLOTS = (
    PlotSpec(
        "token_accuracy",
        "Next-token accuracy on the trained tokens",
        "fraction of tokens",
        ("mean_token_accuracy", "eval_mean_token_accuracy"),
    ),
)
_PREFERENCE_PLOTS = (
    PlotSpec(
        "rewards",
        "Implicit rewards of chosen and rejected answers",
        "reward (beta x log-ratio)",
        ("rewards/chosen", "rewards/rejected", "rewards/margins"),
    ),
    PlotSpec(
        "accuracy",
        "Preference accuracy (chosen reward > rejected)",
        "fraction of pairs",
        ("rewards/accuracies", "eval_rewards/accuracies"),
    ),
    PlotSpec("eval_margins", "Evaluation reward margin", "reward", ("eval_rewards/margins",)),
)
_FEEDBACK_PLOTS = (
    PlotSpec(
        "rewards",
        "Implicit rewards of desirable and undesirable answers",
        "reward (beta x log-ratio)",
        ("rewards/chosen", "rewards/rejected", "rewards/margins"),
    ),
    PlotSpec("kl", "KL estimate against the reference policy", "nats", ("kl",)),
    PlotSpec("eval_margins", "Evaluation reward margin", "reward", ("eval_rewards/margins",)),
)
_GROUP_RL_PLOTS = (
    PlotSpec(
        "rewards", "Rewards (total and each function)", "mean reward", ("reward", "rewards/*/mean")
    ),
    PlotSpec("kl", "KL divergence from the reference policy", "nats per token", ("kl",)),
    PlotSpec(
        "reward_spread",
        "Reward spread within groups",
        "std / fraction",
        ("reward_std", "frac_reward_zero_std"),
    ),
    PlotSpec("eval_reward", "Mean reward on held-out prompts", "mean reward", ("eval_reward",)),
)
_PPO_PLOTS = (
    PlotSpec("rewards", "Reward model score", "score", ("reward",)),
    PlotSpec("kl", "KL divergence from the reference policy", "nats", ("objective/kl",)),
)


@dataclass(frozen=True)
class Algorithm:
    """What aligntune knows about one training algorithm."""

    name: AlgorithmName
    title: str
    trl_trainer: str
    trl_config: str
    data_formats: tuple[str, ...]
    """Dataset formats this algorithm accepts (see `aligntune.core.data.FORMAT_COLUMNS`)."""
    backends: tuple[BackendName, ...]
    defining_settings: MappingProxyType[str, Any] = field(default_factory=_frozen)
    """TRL settings that make the algorithm what it is; a recipe may repeat, never change them."""
    defaults: MappingProxyType[str, Any] = field(default_factory=_frozen)
    """Effective values of the recipe's optional algorithm settings when left unset: written into
    the resolved recipe, so neither TRL's nor the patched Unsloth's own defaults ever apply."""
    scorer: Scorer = "none"
    reference_model: Literal["yes", "no", "when beta > 0"] = "no"
    """Whether training keeps a frozen reference policy (memory: a second copy of the model)."""
    resumable: bool = True
    """Whether a stopped run continues from its newest checkpoint (TRL's PPOTrainer cannot)."""
    log_renames: MappingProxyType[str, str] = field(default_factory=_frozen)
    """The trainer's log keys that events.jsonl spells with aligntune's names."""
    plots: tuple[PlotSpec, ...] = ()
    """The run report's charts of this algorithm's own metrics, after `COMMON_PLOTS`."""
    evaluates: bool = True
    """Whether the trainer's evaluate() runs on the eval split (TRL's PPOTrainer has none)."""
    verified: MappingProxyType[str, tuple[str, ...]] = field(default_factory=_frozen)
    """backend -> devices on which a real training run was verified by aligntune's tests.

    Unsloth on cpu: tests/runners/unsloth (Unsloth's CPU mode). No GPU run is recorded yet:
    `cuda` is added only after the GPU workflow or scripts/gpu-check.sh has passed."""
    notes: str = ""

    @property
    def needs_rewards(self) -> bool:
        """Whether the recipe must list reward functions (the GRPO family)."""
        return self.scorer == "reward functions"


_EVERY_BACKEND = BACKEND_NAMES
_GROUP_FORMATS = ("prompt",)
_CPU_VERIFIED = _frozen(**{backend: ("cpu",) for backend in _EVERY_BACKEND})

GROUP_RL_DEFAULTS = _frozen(
    beta=0.0,
    epsilon=0.2,
    loss_type="grpo",
    scale_rewards="group",
    importance_sampling_level="token",
    mask_truncated_completions=False,
)
"""GRPO-family values for the settings neither the recipe nor the algorithm's definition sets
(TRL's GRPOConfig defaults, except loss_type: TRL's moved from bnpo to dapo, GRPO's is grpo).
`epsilon_high` defaults to `epsilon`, `steps_per_generation` to gradient_accumulation_steps."""


def _group_rl(name: AlgorithmName, title: str, **kwargs: Any) -> Algorithm:
    """A GRPOTrainer algorithm: its defining settings override the family's defaults."""
    defining = kwargs.pop("defining_settings")
    return Algorithm(
        name=name,
        title=title,
        trl_trainer="trl.GRPOTrainer",
        trl_config="trl.GRPOConfig",
        data_formats=_GROUP_FORMATS,
        defining_settings=defining,
        defaults=_frozen(**{**GROUP_RL_DEFAULTS, **defining}),
        scorer="reward functions",
        reference_model="when beta > 0" if "beta" not in defining else "no",
        plots=_GROUP_RL_PLOTS,
        **kwargs,
    )


ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm(
        name="sft",
        title="Supervised fine-tuning",
        trl_trainer="trl.SFTTrainer",
        trl_config="trl.SFTConfig",
        data_formats=("messages", "sharegpt", "prompt_completion", "alpaca", "text"),
        backends=_EVERY_BACKEND,
        plots=_SFT_PLOTS,
        verified=_CPU_VERIFIED,
    ),
    Algorithm(
        name="dpo",
        title="Direct Preference Optimization",
        trl_trainer="trl.DPOTrainer",
        trl_config="trl.DPOConfig",
        data_formats=("preference", "sharegpt_preference"),
        backends=_EVERY_BACKEND,
        defining_settings=_frozen(loss_type=["sigmoid"]),
        reference_model="yes",
        plots=_PREFERENCE_PLOTS,
        verified=_CPU_VERIFIED,
    ),
    Algorithm(
        name="kto",
        title="Kahneman-Tversky Optimization (unpaired desirable/undesirable feedback)",
        trl_trainer="trl.KTOTrainer",
        trl_config="trl.KTOConfig",
        data_formats=("feedback", "feedback_messages"),
        backends=_EVERY_BACKEND,
        defining_settings=_frozen(loss_type="kto"),
        reference_model="yes",
        plots=_FEEDBACK_PLOTS,
        verified=_CPU_VERIFIED,
        notes="Rows are read in file order (TRL pairs each row with its batch neighbours for "
        "the KL estimate): mix desirable and undesirable rows through the file.",
    ),
    Algorithm(
        name="ppo",
        title="Proximal Policy Optimization (RLHF with a reward and a value model)",
        trl_trainer="trl.experimental.ppo.PPOTrainer",
        trl_config="trl.experimental.ppo.PPOConfig",
        data_formats=("prompt",),
        backends=_EVERY_BACKEND,
        scorer="reward model",
        reference_model="yes",
        resumable=False,
        plots=_PPO_PLOTS,
        evaluates=False,
        log_renames=_frozen(**{"loss/policy_avg": "loss", "objective/scores": "reward"}),
        verified=_CPU_VERIFIED,
        notes="Needs trl <= 1.12 (PPO was removed in 1.13); a reward model and a value model.",
    ),
    _group_rl(
        "grpo",
        "Group Relative Policy Optimization",
        backends=_EVERY_BACKEND,
        defining_settings=_frozen(loss_type="grpo", importance_sampling_level="token"),
        verified=_CPU_VERIFIED,
    ),
    _group_rl(
        "gspo",
        "Group Sequence Policy Optimization",
        backends=("trl",),
        defining_settings=_frozen(
            loss_type="grpo",
            importance_sampling_level="sequence",
            beta=0.0,
            epsilon=3e-4,
            epsilon_high=4e-4,
        ),
        verified=_frozen(trl=("cpu",)),
        notes=(
            "Differs from GRPO only when steps_per_generation > gradient_accumulation_steps "
            "or num_iterations > 1."
        ),
    ),
    _group_rl(
        "dapo",
        "Decoupled Clip and Dynamic sAmpling Policy Optimization",
        backends=_EVERY_BACKEND,
        defining_settings=_frozen(
            loss_type="dapo",
            importance_sampling_level="token",
            epsilon_high=0.28,
            mask_truncated_completions=True,
            beta=0.0,
        ),
        verified=_CPU_VERIFIED,
        notes="TRL has no dynamic sampling; add an overlong-penalty reward for the full recipe.",
    ),
    _group_rl(
        "dr_grpo",
        "Dr. GRPO (GRPO done right: no length or std normalisation)",
        backends=_EVERY_BACKEND,
        defining_settings=_frozen(
            loss_type="dr_grpo",
            importance_sampling_level="token",
            scale_rewards="none",
            beta=0.0,
        ),
        verified=_CPU_VERIFIED,
    ),
)

ALGORITHM_NAMES: tuple[AlgorithmName, ...] = tuple(a.name for a in ALGORITHMS)

if set(ALGORITHM_NAMES) != set(get_args(AlgorithmName)):  # pragma: no cover - a registry typo
    raise RuntimeError(f"AlgorithmName {get_args(AlgorithmName)} != registry {ALGORITHM_NAMES}")


def get_algorithm(name: str) -> Algorithm:
    """The registry record for `name`; an error listing the valid names otherwise."""
    for algorithm in ALGORITHMS:
        if algorithm.name == name:
            return algorithm
    raise UserInputError(
        f"unknown algorithm {name!r}; valid algorithms: {', '.join(ALGORITHM_NAMES)}"
    )
