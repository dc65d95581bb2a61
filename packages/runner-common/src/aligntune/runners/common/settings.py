"""Pure translation of a recipe into TRL trainer settings: no torch, no trainer objects.

Everything a run's objective depends on is written explicitly here, never left to TRL's defaults
(which moved between releases: GRPOConfig.loss_type was `bnpo`, then `dapo`). The result is saved
to `trainer_settings.json`; the Unsloth runner can reuse the same translation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aligntune.core.algorithm_sections import (
    DPOAlgorithm,
    GroupRLAlgorithm,
    KTOAlgorithm,
    PPOAlgorithm,
    SFTAlgorithm,
)
from aligntune.core.algorithms import get_algorithm
from aligntune.core.errors import UserInputError
from aligntune.core.plan import Plan
from aligntune.core.recipe import Recipe
from aligntune.runners.common import distributed


@dataclass(frozen=True)
class TrainerSettings:
    """Which TRL trainer and config to build, with every keyword argument spelled out."""

    algorithm: str
    trainer: str
    config: str
    config_kwargs: dict[str, Any]
    model_init: dict[str, Any]
    """Keyword arguments for `from_pretrained` of the policy (and reference) model."""
    peft: dict[str, Any] | None
    """LoraConfig keyword arguments; None for full fine-tuning."""
    models: dict[str, str]
    """The models the run loads: policy, and for PPO reward_model and value_model."""
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The settings as plain data, for trainer_settings.json."""
        return asdict(self)


def resolve_precision(recipe: Recipe, plan: Plan, bf16_supported: bool) -> str:
    """fp32, bf16 or fp16: the recipe's choice, checked against this GPU, or the best default.

    fp16 on CPU never gets here: planning refuses it (`select_backend`)."""
    precision = recipe.training.precision
    if precision == "auto":
        if plan.device == "cpu":
            return "fp32"
        return "bf16" if bf16_supported else "fp16"
    if precision == "bf16" and plan.device == "cuda" and not bf16_supported:
        raise UserInputError("training.precision: this GPU has no bf16 support; use fp16 or fp32")
    return precision


def resolve_model_init(recipe: Recipe, precision: str) -> dict[str, Any]:
    """from_pretrained keyword arguments; dtype `auto` becomes a concrete dtype."""
    model = recipe.model
    dtype: str = model.dtype
    if dtype == "auto":
        # Frozen LoRA bases can sit in half precision; trained weights stay fp32 for AMP.
        lora_half = model.peft.method == "lora" and precision in ("bf16", "fp16")
        dtype = {"bf16": "bfloat16", "fp16": "float16"}[precision] if lora_half else "float32"
    init: dict[str, Any] = {"dtype": dtype, "trust_remote_code": model.trust_remote_code}
    if model.revision:
        init["revision"] = model.revision
    if model.quantization != "none":
        init["quantization"] = model.quantization
    return init


def resolve_peft(recipe: Recipe) -> dict[str, Any] | None:
    """LoraConfig keyword arguments, or None for full fine-tuning."""
    peft = recipe.model.peft
    if peft.method == "full":
        return None
    return {
        "r": peft.r,
        "lora_alpha": peft.alpha,
        "lora_dropout": peft.dropout,
        "target_modules": peft.target_modules,
        "task_type": "CAUSAL_LM",
    }


def common_kwargs(recipe: Recipe, plan: Plan, output_dir: str, precision: str) -> dict[str, Any]:
    """TrainingArguments shared by every trainer."""
    training = recipe.training
    has_eval = recipe.data.eval is not None or recipe.data.eval_fraction is not None
    evaluate = has_eval and training.eval_steps is not None
    return {
        "output_dir": output_dir,
        "max_steps": training.max_steps or -1,
        "num_train_epochs": training.epochs,
        "per_device_train_batch_size": training.batch_size,
        "per_device_eval_batch_size": training.batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "learning_rate": training.learning_rate,
        "lr_scheduler_type": training.lr_scheduler,
        "warmup_steps": training.warmup_ratio,
        "weight_decay": training.weight_decay,
        "max_grad_norm": training.max_grad_norm,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": plan.device == "cpu",
        "gradient_checkpointing": training.gradient_checkpointing,
        "seed": training.seed,
        "data_seed": training.seed,
        "logging_strategy": "steps",
        "logging_steps": training.logging_steps,
        "logging_first_step": True,
        # A NaN must reach our callback, not be replaced by the running average.
        "logging_nan_inf_filter": False,
        "save_strategy": "steps",
        "save_steps": training.save_steps,
        # The runner publishes and rotates checkpoints itself (atomically).
        "save_total_limit": None,
        "save_only_model": False,
        "eval_strategy": "steps" if evaluate else "no",
        "eval_steps": training.eval_steps if evaluate else None,
        "report_to": list(training.report_to) or "none",
        "run_name": recipe.run_name,
        **_trackio_kwargs(recipe),
        "disable_tqdm": True,
        **distributed_kwargs(recipe),
        **distributed.trainer_kwargs(plan.device),
    }


def _trackio_kwargs(recipe: Recipe) -> dict[str, Any]:
    """Trackio stays local: its project is the run's name, and nothing is ever pushed to a Space."""
    if "trackio" not in recipe.training.report_to:
        return {}
    return {"project": recipe.run_name, "trackio_static_space_id": False}


def distributed_kwargs(recipe: Recipe) -> dict[str, Any]:
    """FSDP / DeepSpeed settings; DDP needs none (the launcher's environment sets it up)."""
    dist = recipe.distributed
    if dist.strategy == "fsdp":
        return {"fsdp": "full_shard auto_wrap"}
    if dist.strategy == "deepspeed":
        config = recipe.local_references().get("distributed.config_file")
        if config is not None:
            return {"deepspeed": str(config)}
        return {
            "deepspeed": {
                "zero_optimization": {"stage": dist.zero_stage},
                "train_micro_batch_size_per_gpu": "auto",
                "gradient_accumulation_steps": "auto",
                "train_batch_size": "auto",
            }
        }
    return {}


def sft_kwargs(recipe: Recipe, algorithm: SFTAlgorithm) -> dict[str, Any]:
    """SFTConfig's own settings."""
    peft = recipe.model.peft
    adapts_lm_head = peft.method == "lora" and "lm_head" in peft.target_modules
    return {
        "max_length": recipe.data.max_length,
        "packing": algorithm.packing,
        "completion_only_loss": algorithm.completion_only_loss,
        # aligntune labels conversations turn by turn itself (runners/common/chat_tokens.py).
        "assistant_only_loss": False,
        "dataset_text_field": "text",
        # TRL's default, chunked_nll, reads lm_head's weight itself and refuses a LoRA-wrapped
        # lm_head (trl 1.12 SFTTrainer); nll is the same loss computed in one piece.
        **({"loss_type": "nll"} if adapts_lm_head else {}),
    }


def dpo_kwargs(recipe: Recipe, algorithm: DPOAlgorithm) -> dict[str, Any]:
    """DPOConfig's own settings, the registry's loss_type applied explicitly."""
    return {
        "max_length": recipe.data.max_length,
        "beta": algorithm.beta,
        "label_smoothing": algorithm.label_smoothing,
        **dict(get_algorithm(algorithm.name).defining_settings),
    }


def kto_kwargs(recipe: Recipe, algorithm: KTOAlgorithm) -> dict[str, Any]:
    """KTOConfig's own settings, the registry's loss_type applied explicitly."""
    return {
        "max_length": recipe.data.max_length,
        "beta": algorithm.beta,
        "desirable_weight": algorithm.desirable_weight,
        "undesirable_weight": algorithm.undesirable_weight,
        # TRL estimates the KL term from each batch's rows in file order; KTOTrainer refuses any
        # other sampling for loss_type kto.
        "train_sampling_strategy": "sequential",
        **dict(get_algorithm(algorithm.name).defining_settings),
    }


GROUP_RL_SETTINGS = tuple(name for name in GroupRLAlgorithm.model_fields if name != "name")
"""GRPOConfig takes each GRPO-family recipe setting under the same name."""


def group_rl_kwargs(recipe: Recipe, algorithm: GroupRLAlgorithm) -> dict[str, Any]:
    """GRPOConfig settings: the recipe's, which loading filled with their effective values."""
    kwargs = {name: getattr(algorithm, name) for name in GROUP_RL_SETTINGS}
    kwargs["reward_weights"] = [reward.weight for reward in recipe.rewards]
    return kwargs


def group_rl_warnings(recipe: Recipe, algorithm: GroupRLAlgorithm) -> list[str]:
    """Settings that are valid but do not do what their name suggests."""
    on_policy = (
        algorithm.steps_per_generation or 0
    ) <= recipe.training.gradient_accumulation_steps and algorithm.num_iterations == 1
    if algorithm.importance_sampling_level == "sequence" and on_policy:
        return [
            f"{algorithm.name}: with num_iterations 1 and steps_per_generation <= "
            "gradient_accumulation_steps the update is on-policy, so sequence-level ratios equal "
            "token-level ones and this trains exactly like GRPO"
        ]
    return []


def ppo_kwargs(recipe: Recipe, algorithm: PPOAlgorithm, reward_model: str) -> dict[str, Any]:
    """PPOConfig's own settings (trl.experimental.ppo, trl <= 1.12)."""
    training = recipe.training
    kwargs: dict[str, Any] = {
        "kl_coef": algorithm.kl_coef,
        "kl_estimator": "k1",
        "cliprange": algorithm.cliprange,
        "cliprange_value": algorithm.cliprange,
        "vf_coef": algorithm.vf_coef,
        "num_ppo_epochs": algorithm.num_ppo_epochs,
        "num_mini_batches": algorithm.num_mini_batches,
        "response_length": algorithm.response_length,
        "temperature": algorithm.temperature,
        "missing_eos_penalty": algorithm.missing_eos_penalty,
        "stop_token": "eos",
        "whiten_rewards": False,
        "gamma": 1.0,
        "lam": 0.95,
        # Sample tables print to the console only; the run directory has the metrics.
        "num_sample_generations": 0,
        "sft_model_path": recipe.model.name_or_path,
        "reward_model_path": reward_model,
        "total_episodes": None,
    }
    if training.max_steps:
        per_step = training.batch_size * training.gradient_accumulation_steps
        kwargs["total_episodes"] = (
            training.max_steps * per_step * recipe.distributed.processes_per_node
        )
    return kwargs


def resolve_settings(
    recipe: Recipe,
    plan: Plan,
    output_dir: str,
    *,
    bf16_supported: bool = False,
    reward_model: str | None = None,
    value_model: str | None = None,
) -> TrainerSettings:
    """The complete TRL settings for `recipe` on `plan`'s device."""
    algorithm = get_algorithm(recipe.algorithm.name)
    precision = resolve_precision(recipe, plan, bf16_supported)
    kwargs = common_kwargs(recipe, plan, output_dir, precision)
    warnings: list[str] = []
    match recipe.algorithm:
        case SFTAlgorithm() as section:
            kwargs.update(sft_kwargs(recipe, section))
        case DPOAlgorithm() as section:
            kwargs.update(dpo_kwargs(recipe, section))
        case KTOAlgorithm() as section:
            kwargs.update(kto_kwargs(recipe, section))
        case GroupRLAlgorithm() as section:
            kwargs.update(group_rl_kwargs(recipe, section))
            warnings = group_rl_warnings(recipe, section)
        case PPOAlgorithm() as section:
            kwargs.update(ppo_kwargs(recipe, section, reward_model or ""))
    return TrainerSettings(
        algorithm=algorithm.name,
        trainer=algorithm.trl_trainer,
        config=algorithm.trl_config,
        config_kwargs=kwargs,
        model_init=resolve_model_init(recipe, precision),
        peft=resolve_peft(recipe),
        models=_models(recipe, reward_model, value_model),
        warnings=warnings,
    )


def _models(recipe: Recipe, reward_model: str | None, value_model: str | None) -> dict[str, str]:
    models = {"policy": recipe.model.name_or_path}
    if reward_model:
        models["reward_model"] = reward_model
        models["value_model"] = value_model or reward_model
    return models
