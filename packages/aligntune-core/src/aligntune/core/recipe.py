"""The recipe: one YAML file that says what to train, on what data, with which algorithm.

Every section is strict (`extra="forbid"`): a misspelt key is an error, never ignored. The
docstring under each field is its documentation: `aligntune.core.schema` puts it in the exported
JSON Schema (`recipes/recipe.schema.json`), which editors and the docs show.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from aligntune.core import paths
from aligntune.core.algorithms import get_algorithm
from aligntune.core.backends import BackendChoice


class Section(BaseModel):
    """Base of every recipe section: strict keys."""

    model_config = ConfigDict(extra="forbid")


# --- algorithm -----------------------------------------------------------------------------


class SFTAlgorithm(Section):
    """Supervised fine-tuning on conversations, prompt/completion pairs, alpaca rows or text."""

    name: Literal["sft"]
    packing: bool = False
    """Pack several short examples into one sequence of `data.max_length` tokens."""
    completion_only_loss: bool | None = None
    """Train only on completion tokens of prompt/completion data (None: TRL's choice, on)."""
    assistant_only_loss: bool = False
    """Train only on assistant turns of conversational data (template needs generation tags)."""


class DPOAlgorithm(Section):
    """Direct Preference Optimization on prompt/chosen/rejected data."""

    name: Literal["dpo"]
    beta: float = Field(0.1, gt=0)
    """Strength of the KL penalty towards the reference model."""
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    """Assumed probability that a preference label is wrong (conservative DPO)."""


class PPORewardModelTraining(Section):
    """Train the PPO reward model first, with TRL's RewardTrainer, on preference data."""

    data: DataSource
    """Preference data (prompt/chosen/rejected) for the reward model."""
    max_steps: int = Field(50, gt=0)
    """Optimizer steps for the reward model."""
    learning_rate: float = Field(1e-4, gt=0)
    """Learning rate for the reward model."""


class PPOAlgorithm(Section):
    """Proximal Policy Optimization with a reward model and a value model (TRL <= 1.12)."""

    name: Literal["ppo"]
    reward_model: Annotated[str | None, paths.PATH_FIELD] = None
    """Sequence-classification reward model: hub id or local folder."""
    train_reward_model: PPORewardModelTraining | None = None
    """Train the reward model from preference data before PPO (instead of `reward_model`)."""
    value_model: Annotated[str | None, paths.PATH_FIELD] = None
    """Value model: hub id or local folder (default: initialised from the reward model)."""
    kl_coef: float = Field(0.05, ge=0)
    """KL penalty coefficient towards the reference policy."""
    cliprange: float = Field(0.2, gt=0)
    """Policy clip range."""
    vf_coef: float = Field(0.1, gt=0)
    """Value loss coefficient."""
    num_ppo_epochs: int = Field(4, gt=0)
    """PPO epochs per batch of rollouts."""
    num_mini_batches: int = Field(1, gt=0)
    """Mini-batches per PPO epoch."""
    response_length: int = Field(64, gt=0)
    """Tokens generated per rollout."""
    temperature: float = Field(0.7, gt=0)
    """Sampling temperature for rollouts."""
    missing_eos_penalty: float | None = None
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
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature for completions."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling threshold."""
    num_iterations: int = Field(1, gt=0)
    """Optimisation passes over each batch of generations (mu)."""
    steps_per_generation: int | None = Field(None, gt=0)
    """Optimizer steps per generation round (unset: training.gradient_accumulation_steps)."""
    beta: float | None = Field(None, ge=0)
    """KL coefficient towards the reference model; 0 loads no reference model (unset: 0.0)."""
    epsilon: float | None = Field(None, gt=0)
    """Lower clip bound of the importance ratio (unset: 0.2; GSPO 3e-4)."""
    epsilon_high: float | None = Field(None, gt=0)
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


AlgorithmSectionType = SFTAlgorithm | DPOAlgorithm | PPOAlgorithm | GroupRLAlgorithm
AlgorithmSection = Annotated[AlgorithmSectionType, Field(discriminator="name")]


def algorithm_names(section: type[Section]) -> tuple[str, ...]:
    """The algorithms an algorithm section serves: its `name` Literal."""
    return get_args(section.model_fields["name"].annotation)


ALGORITHM_SECTIONS: dict[str, type[Section]] = {
    name: section for section in get_args(AlgorithmSectionType) for name in algorithm_names(section)
}
"""Each algorithm's own section, by name (from each section's `name` Literal)."""


# --- model ---------------------------------------------------------------------------------


class PeftSettings(Section):
    """Parameter-efficient fine-tuning: LoRA adapters, or full fine-tuning."""

    method: Literal["lora", "full"] = "lora"
    """`lora` trains adapters; `full` trains every weight."""
    r: int = Field(16, gt=0)
    """LoRA rank."""
    alpha: int = Field(32, gt=0)
    """LoRA scaling numerator (lora_alpha)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the LoRA path."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Module names to adapt, or `all-linear`."""


class ModelSettings(Section):
    """The model to train."""

    name_or_path: Annotated[str, paths.PATH_FIELD] = Field(min_length=1)
    """Hub id (e.g. `Qwen/Qwen3-0.6B`) or a local folder, relative to the recipe's folder."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) to pin."""
    architecture: str | None = None
    """The model's `model_type` (e.g. `qwen2`) when it cannot be read from a local config.json."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights' dtype when loading; `auto` keeps the checkpoint's."""
    trust_remote_code: bool = False
    """Run the model repository's own Python code (only for repositories you trust)."""
    quantization: Literal["none", "4bit", "8bit"] = "none"
    """Load the base weights quantized with bitsandbytes (QLoRA); CUDA only."""
    peft: PeftSettings = Field(default_factory=PeftSettings)
    """LoRA or full fine-tuning."""
    chat_template: str | None = None
    """A Jinja chat template that replaces the tokenizer's."""

    @model_validator(mode="after")
    def check_quantization_needs_lora(self) -> ModelSettings:
        """Quantized weights cannot be trained directly: QLoRA needs LoRA adapters."""
        if self.quantization != "none" and self.peft.method != "lora":
            raise ValueError(
                f"quantization {self.quantization!r} needs peft.method 'lora' (QLoRA); "
                "use quantization 'none' for full fine-tuning"
            )
        return self


# --- data ----------------------------------------------------------------------------------

DataFormat = Literal[
    "auto", "messages", "prompt_completion", "alpaca", "text", "preference", "prompt"
]


class DataSource(Section):
    """One dataset: a hub id or a local json/jsonl/csv/parquet file."""

    path: Annotated[str, paths.PATH_FIELD] = Field(min_length=1)
    """Hub dataset id, or a local file relative to the recipe's folder."""
    split: str = "train"
    """Split to read (hub datasets; local files have one split, `train`)."""
    subset: str | None = None
    """Hub dataset configuration name."""
    revision: str | None = None
    """Hub revision to pin."""
    format: DataFormat = "auto"
    """Row format; `auto` detects it from the columns."""
    columns: dict[str, str] = {}
    """Map from aligntune's column names (prompt, chosen, ...) to this dataset's columns."""
    max_samples: int | None = Field(None, gt=0)
    """Use only the first N rows."""

    @model_validator(mode="after")
    def check_column_names(self) -> DataSource:
        """Mapping keys are aligntune's canonical column names."""
        from aligntune.core.data import CANONICAL_COLUMNS

        unknown = sorted(set(self.columns) - set(CANONICAL_COLUMNS))
        if unknown:
            raise ValueError(
                f"columns: unknown column name(s) {', '.join(unknown)}; "
                f"valid: {', '.join(CANONICAL_COLUMNS)}"
            )
        return self


class DataSettings(Section):
    """Training and evaluation data."""

    train: DataSource
    """The training dataset."""
    eval: DataSource | None = None
    """An evaluation dataset."""
    eval_fraction: float | None = Field(None, gt=0, lt=1)
    """Hold out this fraction of the training rows for evaluation (instead of `eval`)."""
    max_length: int = Field(1024, gt=0)
    """Longest tokenized sequence (prompt + completion); longer ones are truncated."""
    system_prompt: str | None = None
    """A system message put before every conversation or prompt."""

    @model_validator(mode="after")
    def check_one_eval_source(self) -> DataSettings:
        """Evaluation data comes from one place."""
        if self.eval is not None and self.eval_fraction is not None:
            raise ValueError("set eval or eval_fraction, not both")
        return self


# --- training, rewards, distributed, output ------------------------------------------------


class TrainingSettings(Section):
    """Optimisation, schedule and bookkeeping."""

    max_steps: int | None = Field(None, gt=0)
    """Optimizer steps to run; overrides `epochs` when set."""
    epochs: float = Field(1.0, gt=0)
    """Passes over the training data."""
    batch_size: int = Field(4, gt=0)
    """Examples per device per step (for the GRPO family: completions per device per step)."""
    gradient_accumulation_steps: int = Field(1, gt=0)
    """Micro-batches accumulated into one optimizer step."""
    learning_rate: float = Field(2e-4, gt=0)
    """Peak learning rate."""
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    """Learning-rate schedule."""
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    """Fraction of steps spent warming up."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradient clipping norm."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Training precision; `auto` is bf16 on a GPU that supports it, else fp32."""
    gradient_checkpointing: bool = False
    """Trade compute for memory by recomputing activations."""
    seed: int = 42
    """Seed for weights init, data order and sampling."""
    logging_steps: int = Field(1, gt=0)
    """Write an event every N steps."""
    save_steps: int = Field(100, gt=0)
    """Publish a checkpoint every N steps."""
    save_total_limit: int = Field(2, gt=0)
    """Complete checkpoints kept; the newest is never deleted."""
    eval_steps: int | None = Field(None, gt=0)
    """Evaluate every N steps (needs eval data)."""
    report_to: list[Literal["wandb", "tensorboard", "mlflow"]] = []
    """Experiment trackers to report to, besides the run directory's events."""


class RewardSpec(Section):
    """One reward function for the GRPO family, with its weight."""

    function: str = Field(min_length=1)
    """A built-in name (see `aligntune.core.rewards`) or `module:function` (TRL's contract)."""
    weight: float = 1.0
    """Weight of this reward in the sum."""
    params: dict[str, Any] = {}
    """Keyword arguments of a built-in reward (e.g. `column`, `pattern`)."""

    @model_validator(mode="after")
    def check_function(self) -> RewardSpec:
        """A built-in with valid params, or a `module:function` reference."""
        from aligntune.core.rewards import check_reward_spec

        check_reward_spec(self.function, self.params)
        return self


class DistributedSettings(Section):
    """Multi-process training. Topology (nodes, rank, rendezvous) comes from the environment."""

    strategy: Literal["none", "ddp", "fsdp", "deepspeed"] = "none"
    """How processes share the work."""
    processes_per_node: int = Field(1, gt=0)
    """Training processes per machine (usually one per GPU)."""
    zero_stage: Literal[0, 1, 2, 3] | None = None
    """DeepSpeed ZeRO stage (strategy deepspeed)."""
    config_file: Annotated[str | None, paths.PATH_FIELD] = None
    """An accelerate or DeepSpeed config file, relative to the recipe's folder."""

    @model_validator(mode="after")
    def check_strategy_options(self) -> DistributedSettings:
        """DeepSpeed needs a stage or a config; a stage needs DeepSpeed."""
        if self.strategy == "deepspeed" and self.zero_stage is None and not self.config_file:
            raise ValueError("strategy deepspeed needs zero_stage (0-3) or config_file")
        if self.zero_stage is not None and self.strategy != "deepspeed":
            raise ValueError(f"zero_stage needs strategy deepspeed, not {self.strategy!r}")
        return self


class OutputSettings(Section):
    """Where the run directory goes."""

    dir: str | None = None
    """Run directory, relative to the current directory (default: `runs/<recipe name>`)."""
    save_final: bool = True
    """Write the trained model (or adapter) and tokenizer to `final/`."""


class Recipe(Section):
    """A complete aligntune training recipe."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Run name (default: the recipe file's name)."""
    algorithm: AlgorithmSection
    """The training algorithm and its own settings, chosen by `name`."""
    backend: BackendChoice = "auto"
    """Training backend; `auto` picks Unsloth only where it can run, else TRL."""
    model: ModelSettings
    """The model to train."""
    data: DataSettings
    """Training and evaluation data."""
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    """Optimisation, schedule and bookkeeping."""
    rewards: list[RewardSpec] = []
    """Reward functions (GRPO, GSPO, DAPO, Dr. GRPO)."""
    distributed: DistributedSettings = Field(default_factory=DistributedSettings)
    """Multi-process and multi-node training."""
    output: OutputSettings = Field(default_factory=OutputSettings)
    """Where results go."""

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def check_rewards_match_algorithm(self) -> Recipe:
        """GRPO-family algorithms need rewards; the others must not silently ignore them."""
        algorithm = get_algorithm(self.algorithm.name)
        if algorithm.needs_rewards and not self.rewards:
            raise ValueError(
                f"rewards: {algorithm.name} needs at least one reward function, e.g. "
                "rewards: [{function: exact_match, params: {column: answer}}]"
            )
        if self.rewards and not algorithm.needs_rewards:
            raise ValueError(
                f"rewards: {algorithm.name} does not use reward functions; remove `rewards`"
            )
        return self

    @model_validator(mode="after")
    def check_group_rl(self) -> Recipe:
        """GRPO family: effective values for unset settings, then whole groups per batch."""
        algorithm = self.algorithm
        if isinstance(algorithm, GroupRLAlgorithm):
            algorithm.fill_effective_values(self.training.gradient_accumulation_steps)
            check_generation_batch(self, algorithm)
        return self

    @property
    def base_dir(self) -> Path:
        """The folder that relative input paths (model, data, rewards) are resolved against."""
        return self._base_dir

    def with_base_dir(self, base_dir: Path) -> Recipe:
        """This recipe, with relative input paths resolved against `base_dir`."""
        self._base_dir = base_dir.resolve()
        return self

    @property
    def run_name(self) -> str:
        """The run's name: `name`, else the algorithm."""
        return self.name or self.algorithm.name

    def to_yaml_dict(self) -> dict[str, Any]:
        """The recipe as plain data, every default spelled out."""
        return self.model_dump(mode="json")

    def local_references(self) -> dict[str, Path]:
        """Each field naming a local file or folder (`data.train.path`, ...) -> its absolute path.

        Hub ids are left out; the fields that may hold a path carry `paths.PATH_FIELD`.
        """
        return paths.local_references(self)

    def with_references(self, new: Mapping[str, str]) -> Recipe:
        """A copy with these path fields replaced (container paths, absolute paths), unchecked."""
        return paths.with_references(self, new)


PPORewardModelTraining.model_rebuild()


def check_generation_batch(recipe: Recipe, algorithm: GroupRLAlgorithm) -> None:
    """TRL needs whole groups per generation batch, in training and in evaluation."""
    training = recipe.training
    processes = recipe.distributed.processes_per_node
    group = algorithm.num_generations
    steps = algorithm.steps_per_generation or training.gradient_accumulation_steps
    batch = training.batch_size * steps * processes
    if batch % group:
        raise ValueError(
            f"training.batch_size ({training.batch_size}) x steps_per_generation ({steps}) x "
            f"processes ({processes}) = {batch} completions per generation, which is not a "
            f"multiple of algorithm.num_generations ({group}); make batch_size a multiple of "
            "num_generations"
        )
    has_eval = recipe.data.eval is not None or recipe.data.eval_fraction is not None
    if has_eval and (training.batch_size * processes) % group:
        raise ValueError(
            f"training.batch_size ({training.batch_size}) x processes ({processes}) = "
            f"{training.batch_size * processes} completions per evaluation batch, which is not a "
            f"multiple of algorithm.num_generations ({group}); make batch_size a multiple of "
            "num_generations"
        )
