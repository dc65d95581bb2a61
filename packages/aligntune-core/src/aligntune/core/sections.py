"""The recipe's sections besides the algorithm's: model, data, training, rewards, samples,
distributed and output, and `Section`, the base of every section.

Every section is strict: a misspelt key is an error, never ignored; a value must have the field's
type (a boolean is no number, a number no boolean; text is never converted); a float is finite.
Free-form text has a size limit (`aligntune.core.field_types`). The docstring under each field is
its documentation: `aligntune.core.schema` puts it in the exported JSON Schema
(`recipes/recipe.schema.json`), which editors and the docs show.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from aligntune.core import paths
from aligntune.core.backends import Tracker
from aligntune.core.conversations import TargetRole, TurnField
from aligntune.core.data import CANONICAL_COLUMNS, FORMAT_COLUMNS
from aligntune.core.field_types import (
    ChatTemplate,
    Name,
    Number,
    PathText,
    RewardParams,
    SystemPrompt,
)


class Section(BaseModel):
    """Base of every recipe section: strict keys, strict types, finite floats."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# --- model ---------------------------------------------------------------------------------


class PeftSettings(Section):
    """Parameter-efficient fine-tuning: LoRA adapters, or full fine-tuning."""

    method: Literal["lora", "full"] = "lora"
    """`lora` trains adapters; `full` trains every weight."""
    r: int = Field(16, gt=0)
    """LoRA rank."""
    alpha: int = Field(32, gt=0)
    """LoRA scaling numerator (lora_alpha)."""
    dropout: Number = Field(0.0, ge=0, lt=1)
    """Dropout on the LoRA path."""
    target_modules: Annotated[list[Name], Field(max_length=64)] | Literal["all-linear"] = (
        "all-linear"
    )
    """Module names to adapt, or `all-linear`."""


class ModelSettings(Section):
    """The model to train."""

    name_or_path: Annotated[PathText, paths.PATH_FIELD]
    """Hub id (e.g. `Qwen/Qwen3-0.6B`) or a local folder, relative to the recipe's folder."""
    revision: Name | None = None
    """Hub revision (branch, tag or commit) to pin."""
    architecture: Name | None = None
    """The model's `model_type` (e.g. `qwen2`) when it cannot be read from a local config.json."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights' dtype when loading; `auto` keeps the checkpoint's."""
    trust_remote_code: bool = False
    """Run the model repository's own Python code (only for repositories you trust)."""
    quantization: Literal["none", "4bit", "8bit"] = "none"
    """Load the base weights quantized with bitsandbytes (QLoRA); CUDA only."""
    peft: PeftSettings = Field(default_factory=PeftSettings)
    """LoRA or full fine-tuning."""
    chat_template: ChatTemplate | None = None
    """Replaces the tokenizer's chat template: one of the names chatml, llama-3, mistral, gemma,
    qwen (written with generation markers and the end-of-turn token trained), or a Jinja
    template's text. The model's tokenizer must have a named template's special tokens."""

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

FORMATS = ("auto", *FORMAT_COLUMNS)
"""What `format` may say: `auto`, or a format of `aligntune.core.data.FORMAT_COLUMNS`."""


class DataSource(Section):
    """One dataset: a hub id or a local json/jsonl/csv/parquet file."""

    path: Annotated[PathText, paths.PATH_FIELD]
    """Hub dataset id, or a local file relative to the recipe's folder."""
    split: Name = "train"
    """Split to read (hub datasets; local files have one split, `train`)."""
    subset: Name | None = None
    """Hub dataset configuration name."""
    revision: Name | None = None
    """Hub revision to pin."""
    format: Annotated[Name, Field(json_schema_extra={"enum": list(FORMATS)})] = "auto"
    """Row format; `auto` detects it from the columns (docs/recipes.md lists the formats)."""
    columns: dict[str, Name] = {}
    """Map from aligntune's column names (prompt, chosen, conversations, ...) to this dataset's."""
    fields: dict[TurnField, Name] = {}
    """The keys of a turn's role and text, if not the format's (`role`/`content` in messages,
    `from`/`value` in ShareGPT), e.g. `{role: speaker, content: text}`."""
    roles: dict[Name, TargetRole] = {}
    """This dataset's role names mapped to aligntune's (human, gpt, function_call, observation
    and the OpenAI names are known), e.g. `{bot: assistant, person: user}`."""
    max_samples: int | None = Field(None, gt=0)
    """Use only the first N rows."""
    weight: Number | None = Field(None, gt=0, le=100)
    """In a mixture: use this many times the source's rows (0.5: a seeded half, 2: each twice)."""

    @model_validator(mode="after")
    def check_column_names(self) -> DataSource:
        """Mapping keys are aligntune's canonical column names, and the format is known."""
        unknown = sorted(set(self.columns) - set(CANONICAL_COLUMNS))
        if unknown:
            raise ValueError(
                f"columns: unknown column name(s) {', '.join(unknown)}; "
                f"valid: {', '.join(CANONICAL_COLUMNS)}"
            )
        twice = sorted(
            {s for s in self.columns.values() if list(self.columns.values()).count(s) > 1}
        )
        if twice:
            names = [f"{c} -> {s}" for c, s in self.columns.items() if s in twice]
            raise ValueError(
                f"columns: {', '.join(names)}: one column of the file cannot be two of aligntune's"
            )
        if self.format not in FORMATS:
            raise ValueError(f"format: unknown format {self.format!r}; valid: {', '.join(FORMATS)}")
        return self


def _source_or_mixture(value: object) -> str:
    return "mixture" if isinstance(value, list) else "source"


TrainData = Annotated[
    Annotated[DataSource, Tag("source")]
    | Annotated[list[DataSource], Field(min_length=1, max_length=64), Tag("mixture")],
    Discriminator(_source_or_mixture),
]
"""One data source, or a list of them mixed by `weight`/`max_samples` and the seed."""


class DataSettings(Section):
    """Training and evaluation data."""

    train: TrainData
    """The training dataset, or a list of datasets to mix (each with its own format)."""
    eval: DataSource | None = None
    """An evaluation dataset."""
    eval_fraction: Number | None = Field(None, gt=0, lt=1)
    """Hold out this fraction of the training rows for evaluation (instead of `eval`)."""
    max_length: int = Field(1024, ge=2)
    """Longest tokenized sequence (prompt + completion); longer ones are truncated. At least 2:
    a model learns to predict each token from those before it."""
    system_prompt: SystemPrompt | None = None
    """A system message put before every conversation or prompt."""

    def train_sources(self) -> list[tuple[str, DataSource]]:
        """(recipe field, source) for each training source: `data.train` or `data.train.N`."""
        if isinstance(self.train, DataSource):
            return [("data.train", self.train)]
        return [(f"data.train.{index}", source) for index, source in enumerate(self.train)]

    @model_validator(mode="after")
    def check_one_eval_source(self) -> DataSettings:
        """Evaluation data comes from one place."""
        if self.eval is not None and self.eval_fraction is not None:
            raise ValueError("set eval or eval_fraction, not both")
        return self


# --- training, rewards, distributed, output ------------------------------------------------


def _one_or_more(value: Any) -> Any:
    """A single name stands for a list of one (`report_to: tensorboard`)."""
    return [value] if isinstance(value, str) else value


class TrainingSettings(Section):
    """Optimisation, schedule and bookkeeping."""

    max_steps: int | None = Field(None, gt=0)
    """Optimizer steps to run; overrides `epochs` when set."""
    epochs: Number = Field(1.0, gt=0)
    """Passes over the training data."""
    batch_size: int = Field(4, gt=0)
    """Examples per device per step (for the GRPO family: completions per device per step)."""
    gradient_accumulation_steps: int = Field(1, gt=0)
    """Micro-batches accumulated into one optimizer step."""
    learning_rate: Number = Field(2e-4, gt=0)
    """Peak learning rate."""
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    """Learning-rate schedule."""
    warmup_ratio: Number = Field(0.0, ge=0, lt=1)
    """Fraction of steps spent warming up."""
    weight_decay: Number = Field(0.0, ge=0)
    """AdamW weight decay."""
    max_grad_norm: Number = Field(1.0, gt=0)
    """Gradient clipping norm."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Training precision; `auto` is bf16 on a GPU that supports it, else fp32."""
    gradient_checkpointing: bool = False
    """Trade compute for memory by recomputing activations."""
    seed: int = Field(42, ge=0, le=2**32 - 1)
    """Seed for weights init, data order and sampling."""
    logging_steps: int = Field(1, gt=0)
    """Write an event every N steps."""
    save_steps: int = Field(100, gt=0)
    """Publish a checkpoint every N steps."""
    save_total_limit: int = Field(2, gt=0)
    """Complete checkpoints kept; the newest is never deleted."""
    eval_steps: int | None = Field(None, gt=0)
    """Evaluate every N steps (needs eval data); with eval data the run is also evaluated at the
    end."""
    report_to: Annotated[
        list[Tracker], BeforeValidator(_one_or_more, json_schema_input_type=Tracker | list[Tracker])
    ] = []
    """Experiment trackers to report to, besides the run directory's events: tensorboard and
    trackio (installed in every image; they write under the run directory); one name or a list."""

    @model_validator(mode="after")
    def check_trackers_installed(self) -> TrainingSettings:
        """Only trackers every runner image installs: a missing one would crash the run."""
        from aligntune.core.backends import BACKENDS

        everywhere = frozenset.intersection(*(b.trackers for b in BACKENDS))
        missing = [t for t in self.report_to if t not in everywhere]
        if missing:
            raise ValueError(
                f"report_to: {', '.join(missing)} is not installed in aligntune's images (they "
                f"have {', '.join(sorted(everywhere))}); use one of those (both write into the run "
                "directory), or remove it: events.jsonl and the run report always record the "
                "metrics"
            )
        return self


class SampleSettings(Section):
    """Greedy sample generations by the base model before training and the trained model after,
    saved to samples.jsonl and shown side by side in the run report."""

    prompts: Annotated[list[SystemPrompt], Field(max_length=16)] = []
    """Prompts to answer (user turns when the model has a chat template); default: the first
    `count` prompts of the eval split, else of the training data."""
    count: int = Field(3, ge=0, le=16)
    """How many prompts to take from the data when `prompts` is empty; 0 turns samples off."""
    max_new_tokens: int = Field(32, gt=0, le=512)
    """The longest answer, in tokens (greedy decoding)."""


class RewardSpec(Section):
    """One reward function for the GRPO family, with its weight."""

    function: Name
    """A built-in name (see `aligntune.core.rewards`) or `module:function` (TRL's contract)."""
    weight: Number = 1.0
    """Weight of this reward in the sum."""
    params: RewardParams = {}
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
    config_file: Annotated[PathText | None, paths.PATH_FIELD] = None
    """A DeepSpeed JSON config (read with strategy deepspeed), relative to the recipe's folder."""

    @model_validator(mode="after")
    def check_strategy_options(self) -> DistributedSettings:
        """DeepSpeed needs a stage or a config; a stage needs DeepSpeed."""
        if self.strategy == "deepspeed" and self.zero_stage is None and not self.config_file:
            raise ValueError("strategy deepspeed needs zero_stage (0-3) or config_file")
        if self.zero_stage is not None and self.strategy != "deepspeed":
            raise ValueError(f"zero_stage needs strategy deepspeed, not {self.strategy!r}")
        if self.zero_stage is not None and self.config_file:
            raise ValueError(
                "zero_stage or config_file, not both: the config file's zero_optimization.stage "
                "is the one DeepSpeed uses"
            )
        return self


class OutputSettings(Section):
    """Where the run directory goes."""

    dir: PathText | None = None
    """Run directory, relative to the current directory (default: `runs/<recipe name>`)."""
    save_final: bool = True
    """Write the trained model (or adapter) and tokenizer to `final/`."""
