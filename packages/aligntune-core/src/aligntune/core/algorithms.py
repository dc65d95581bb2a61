"""The algorithm registry: one frozen record per algorithm, as data.

Each record says which TRL trainer implements the algorithm, which dataset formats it accepts,
which backends run it, and the TRL settings that *define* it. Defining settings are always written
explicitly into the trainer config, never left to TRL's (or Unsloth's patched) defaults, so the
same recipe means the same objective on every backend and every library version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aligntune.core.errors import UserInputError


@dataclass(frozen=True)
class Algorithm:
    """What aligntune knows about one training algorithm."""

    name: str
    title: str
    family: str
    """sft, preference, online_rl (PPO) or group_rl (the GRPO family)."""
    trl_trainer: str
    trl_config: str
    data_formats: tuple[str, ...]
    """Dataset formats this algorithm accepts (see `aligntune.core.data.FORMAT_COLUMNS`)."""
    backends: tuple[str, ...]
    defining_settings: MappingProxyType[str, Any] = field(
        default_factory=lambda: MappingProxyType({})
    )
    needs_rewards: bool = False
    verified: MappingProxyType[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """backend -> devices on which a real training run was verified by aligntune's tests.

    Unsloth on cpu: tests/runners/unsloth (Unsloth's CPU mode). No GPU run is recorded yet:
    `cuda` is added only after the GPU workflow or scripts/gpu-check.sh has passed."""
    notes: str = ""


def _frozen(**settings: Any) -> MappingProxyType[str, Any]:
    return MappingProxyType(dict(settings))


_GROUP_FORMATS = ("prompt",)

ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm(
        name="sft",
        title="Supervised fine-tuning",
        family="sft",
        trl_trainer="trl.SFTTrainer",
        trl_config="trl.SFTConfig",
        data_formats=("messages", "prompt_completion", "alpaca", "text"),
        backends=("trl", "unsloth"),
        verified=_frozen(trl=("cpu",), unsloth=("cpu",)),
    ),
    Algorithm(
        name="dpo",
        title="Direct Preference Optimization",
        family="preference",
        trl_trainer="trl.DPOTrainer",
        trl_config="trl.DPOConfig",
        data_formats=("preference",),
        backends=("trl", "unsloth"),
        defining_settings=_frozen(loss_type=["sigmoid"]),
        verified=_frozen(trl=("cpu",), unsloth=("cpu",)),
        notes="beta comes from the recipe (default 0.1).",
    ),
    Algorithm(
        name="ppo",
        title="Proximal Policy Optimization (RLHF with a reward and a value model)",
        family="online_rl",
        trl_trainer="trl.experimental.ppo.PPOTrainer",
        trl_config="trl.experimental.ppo.PPOConfig",
        data_formats=("prompt",),
        backends=("trl", "unsloth"),
        verified=_frozen(trl=("cpu",), unsloth=("cpu",)),
        notes="Needs trl <= 1.12 (PPO was removed in 1.13); a reward model and a value model.",
    ),
    Algorithm(
        name="grpo",
        title="Group Relative Policy Optimization",
        family="group_rl",
        trl_trainer="trl.GRPOTrainer",
        trl_config="trl.GRPOConfig",
        data_formats=_GROUP_FORMATS,
        backends=("trl", "unsloth"),
        defining_settings=_frozen(loss_type="grpo", importance_sampling_level="token"),
        needs_rewards=True,
        verified=_frozen(trl=("cpu",), unsloth=("cpu",)),
    ),
    Algorithm(
        name="gspo",
        title="Group Sequence Policy Optimization",
        family="group_rl",
        trl_trainer="trl.GRPOTrainer",
        trl_config="trl.GRPOConfig",
        data_formats=_GROUP_FORMATS,
        backends=("trl",),
        defining_settings=_frozen(
            loss_type="grpo",
            importance_sampling_level="sequence",
            beta=0.0,
            epsilon=3e-4,
            epsilon_high=4e-4,
        ),
        needs_rewards=True,
        verified=_frozen(trl=("cpu",)),
        notes=(
            "Differs from GRPO only when steps_per_generation > gradient_accumulation_steps "
            "or num_iterations > 1."
        ),
    ),
    Algorithm(
        name="dapo",
        title="Decoupled Clip and Dynamic sAmpling Policy Optimization",
        family="group_rl",
        trl_trainer="trl.GRPOTrainer",
        trl_config="trl.GRPOConfig",
        data_formats=_GROUP_FORMATS,
        backends=("trl", "unsloth"),
        defining_settings=_frozen(
            loss_type="dapo",
            importance_sampling_level="token",
            epsilon_high=0.28,
            mask_truncated_completions=True,
            beta=0.0,
        ),
        needs_rewards=True,
        verified=_frozen(trl=("cpu",), unsloth=("cpu",)),
        notes="TRL has no dynamic sampling; add an overlong-penalty reward for the full recipe.",
    ),
    Algorithm(
        name="dr_grpo",
        title="Dr. GRPO (GRPO done right: no length or std normalisation)",
        family="group_rl",
        trl_trainer="trl.GRPOTrainer",
        trl_config="trl.GRPOConfig",
        data_formats=_GROUP_FORMATS,
        backends=("trl", "unsloth"),
        defining_settings=_frozen(
            loss_type="dr_grpo",
            importance_sampling_level="token",
            scale_rewards="none",
            beta=0.0,
        ),
        needs_rewards=True,
        verified=_frozen(trl=("cpu",), unsloth=("cpu",)),
    ),
)

ALGORITHM_NAMES: tuple[str, ...] = tuple(a.name for a in ALGORITHMS)
BACKEND_NAMES: tuple[str, ...] = ("trl", "unsloth")


def get_algorithm(name: str) -> Algorithm:
    """The registry record for `name`; an error listing the valid names otherwise."""
    for algorithm in ALGORITHMS:
        if algorithm.name == name:
            return algorithm
    raise UserInputError(
        f"unknown algorithm {name!r}; valid algorithms: {', '.join(ALGORITHM_NAMES)}"
    )


def algorithms_for_backend(backend: str) -> tuple[Algorithm, ...]:
    """The algorithms that `backend` supports, in registry order."""
    return tuple(a for a in ALGORITHMS if backend in a.backends)
