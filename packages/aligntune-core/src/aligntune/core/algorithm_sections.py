"""Each algorithm's own recipe section, chosen by `algorithm.name` (a discriminated union).

The names are the registry's (`aligntune.core.algorithms`); tests/core/test_registries.py checks
that these sections serve exactly the registered algorithms.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from aligntune.core import paths
from aligntune.core.algorithms import get_algorithm
from aligntune.core.field_types import Number, PathText
from aligntune.core.sections import DataSource, Section


class SFTAlgorithm(Section):
    """Supervised fine-tuning on conversations, prompt/completion pairs, alpaca rows or text."""

    name: Literal["sft"]
    packing: bool = False
    """Pack several short examples into one sequence of `data.max_length` tokens."""
    completion_only_loss: bool | None = None
    """Train only on completion tokens of prompt/completion data (None: TRL's choice, on)."""
    assistant_only_loss: bool = True
    """Train only on the assistant turns of conversations; false trains user turns too. System
    and tool-result turns, and turns marked `train: false` or `loss_weight: 0`, never are."""


class DPOAlgorithm(Section):
    """Direct Preference Optimization on prompt/chosen/rejected data."""

    name: Literal["dpo"]
    beta: Number = Field(0.1, gt=0)
    """Strength of the KL penalty towards the reference model."""
    label_smoothing: Number = Field(0.0, ge=0, lt=0.5)
    """Assumed probability that a preference label is wrong (conservative DPO)."""


class KTOAlgorithm(Section):
    """Kahneman-Tversky Optimization on unpaired feedback: a completion and whether it is good."""

    name: Literal["kto"]
    beta: Number = Field(0.1, gt=0)
    """Strength of the penalty for moving away from the reference model (TRL's default 0.1)."""
    desirable_weight: Number = Field(1.0, gt=0)
    """Weight of the loss on desirable rows (label true); raise it when they are the fewer."""
    undesirable_weight: Number = Field(1.0, gt=0)
    """Weight of the loss on undesirable rows (label false); raise it when they are the fewer."""


class PPORewardModelTraining(Section):
    """Train the PPO reward model first, with TRL's RewardTrainer, on preference data."""

    data: DataSource
    """Preference data (prompt/chosen/rejected) for the reward model."""
    max_steps: int = Field(50, gt=0)
    """Optimizer steps for the reward model."""
    learning_rate: Number = Field(1e-4, gt=0)
    """Learning rate for the reward model."""


class PPOAlgorithm(Section):
    """Proximal Policy Optimization with a reward model and a value model (TRL <= 1.12)."""

    name: Literal["ppo"]
    reward_model: Annotated[PathText | None, paths.PATH_FIELD] = None
    """Sequence-classification reward model: hub id or local folder."""
    train_reward_model: PPORewardModelTraining | None = None
    """Train the reward model from preference data before PPO (instead of `reward_model`)."""
    value_model: Annotated[PathText | None, paths.PATH_FIELD] = None
    """Value model: hub id or local folder (default: initialised from the reward model)."""
    kl_coef: Number = Field(0.05, ge=0)
    """KL penalty coefficient towards the reference policy."""
    cliprange: Number = Field(0.2, gt=0)
    """Policy clip range."""
    vf_coef: Number = Field(0.1, gt=0)
    """Value loss coefficient."""
    num_ppo_epochs: int = Field(4, gt=0)
    """PPO epochs per batch of rollouts."""
    num_mini_batches: int = Field(1, gt=0)
    """Mini-batches per PPO epoch."""
    response_length: int = Field(64, gt=0)
    """Tokens generated per rollout."""
    temperature: Number = Field(0.7, gt=0)
    """Sampling temperature for rollouts."""
    missing_eos_penalty: Number | None = None
    """Reward subtracted from responses that do not end with EOS."""

    @model_validator(mode="after")
    def check_one_reward_model_source(self) -> PPOAlgorithm:
        """Exactly one of `reward_model` and `train_reward_model`."""
        if (self.reward_model is None) == (self.train_reward_model is None):
            raise ValueError(
                "set exactly one of reward_model (a trained reward model) and "
                "train_reward_model (preference data to train one first)"
            )
        return self


class GroupRLAlgorithm(Section):
    """GRPO, GSPO, DAPO or Dr. GRPO; fields left unset take the algorithm's values.

    One section serves the four: they differ only in the settings that define them, which the
    registry holds (and which a recipe may repeat but not change). A loaded recipe holds the
    effective value of every field, which `recipe.resolved.yaml` shows.
    """

    name: Literal["grpo", "gspo", "dapo", "dr_grpo"]

    num_generations: int = Field(8, ge=2)
    """Completions sampled per prompt (the group)."""
    max_completion_length: int = Field(256, gt=0)
    """Longest completion generated, in tokens."""
    temperature: Number = Field(1.0, gt=0)
    """Sampling temperature for completions."""
    top_p: Number = Field(1.0, gt=0, le=1)
    """Nucleus sampling threshold."""
    num_iterations: int = Field(1, gt=0)
    """Optimisation passes over each batch of generations (mu)."""
    steps_per_generation: int | None = Field(None, gt=0)
    """Optimizer steps per generation round (unset: training.gradient_accumulation_steps)."""
    beta: Number | None = Field(None, ge=0)
    """KL coefficient towards the reference model; 0 loads no reference model (unset: 0.0)."""
    epsilon: Number | None = Field(None, gt=0)
    """Lower clip bound of the importance ratio (unset: 0.2; GSPO 3e-4)."""
    epsilon_high: Number | None = Field(None, gt=0)
    """Upper clip bound of the importance ratio (unset: epsilon; DAPO 0.28, GSPO 4e-4)."""
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] | None = None
    """Loss aggregation; fixed by the algorithm (grpo for GRPO and GSPO)."""
    scale_rewards: Literal["group", "batch", "none"] | None = None
    """How advantages are scaled by the reward standard deviation (unset: group; Dr. GRPO none)."""
    importance_sampling_level: Literal["token", "sequence"] | None = None
    """Token-level (GRPO) or sequence-level (GSPO) importance ratios."""
    mask_truncated_completions: bool | None = None
    """Exclude completions cut at max_completion_length from the loss (unset: false; DAPO true)."""

    @model_validator(mode="after")
    def check_defining_settings(self) -> GroupRLAlgorithm:
        """A setting that defines the algorithm may be repeated, never changed."""
        name = self.name
        defining = get_algorithm(name).defining_settings
        clashes = [
            f"{key}={getattr(self, key)!r} (defined as {value!r})"
            for key, value in defining.items()
            if getattr(self, key) is not None and getattr(self, key) != value
        ]
        if clashes:
            raise ValueError(
                f"{', '.join(clashes)} would change what {name} is; remove the setting or "
                "choose the algorithm that has it"
            )
        return self

    def fill_effective_values(self, gradient_accumulation_steps: int) -> None:
        """Give every unset field the value training will use (the registry's, else derived)."""
        defaults = get_algorithm(self.name).defaults
        effective = {name: value for name, value in defaults.items() if getattr(self, name) is None}
        if self.epsilon_high is None and "epsilon_high" not in effective:
            effective["epsilon_high"] = self.epsilon or effective["epsilon"]
        if self.steps_per_generation is None:
            effective["steps_per_generation"] = gradient_accumulation_steps
        # Written past pydantic's setattr: the fields stay "unset", so a copy of this recipe for
        # another algorithm (the Python API's config=) does not carry these values along.
        self.__dict__.update(effective)


AlgorithmSectionType = SFTAlgorithm | DPOAlgorithm | KTOAlgorithm | PPOAlgorithm | GroupRLAlgorithm
AlgorithmSection = Annotated[AlgorithmSectionType, Field(discriminator="name")]


def algorithm_names(section: type[Section]) -> tuple[str, ...]:
    """The algorithms an algorithm section serves: its `name` Literal."""
    return get_args(section.model_fields["name"].annotation)


ALGORITHM_SECTIONS: dict[str, type[Section]] = {
    name: section for section in get_args(AlgorithmSectionType) for name in algorithm_names(section)
}
"""Each algorithm's own section, by name (from each section's `name` Literal)."""
