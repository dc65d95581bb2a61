"""Small builders: resolved settings + loaded pieces -> one TRL trainer per recipe section."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aligntune.core.algorithm_sections import (
    DPOAlgorithm,
    GroupRLAlgorithm,
    KTOAlgorithm,
    PPOAlgorithm,
    SFTAlgorithm,
)
from aligntune.core.recipe import Recipe
from aligntune.runners.common.data import prepare, tokenize_prompts
from aligntune.runners.common.models import (
    load_causal_lm,
    load_scalar_model,
    lora_config,
    model_reference,
    seed,
)
from aligntune.runners.common.settings import TrainerSettings
from aligntune.runners.common.sources import load_source


@dataclass
class Pieces:
    """Everything a trainer is built from, loaded and checked before the run dir is touched."""

    recipe: Recipe
    settings: TrainerSettings
    device: str
    tokenizer: Any
    model: Any
    train: Any
    eval: Any | None
    reward_funcs: list[Any]
    peft_in_trainer: bool = True
    """False when the policy already carries its adapters (Unsloth's get_peft_model)."""
    examples: tuple[tuple[str, list[dict[str, Any]]], ...] = ()
    """Where the sample prompts come from (`PreparedData.examples`)."""


def _peft_config(p: Pieces) -> Any:
    return lora_config(p.settings.peft) if p.peft_in_trainer else None


def build_sft(p: Pieces, callbacks: list[Any]) -> Any:
    """SFTTrainer on messages, prompt/completion or text rows."""
    from trl import SFTConfig, SFTTrainer

    return SFTTrainer(
        model=p.model,
        args=SFTConfig(**p.settings.config_kwargs),
        train_dataset=p.train,
        eval_dataset=p.eval,
        processing_class=p.tokenizer,
        peft_config=_peft_config(p),
        callbacks=callbacks,
    )


def _reference_model(p: Pieces) -> Any:
    """Full fine-tuning's frozen reference, loaded exactly like the policy; None with LoRA (the
    trainer disables the adapters instead)."""
    if p.settings.peft is not None:
        return None
    # TRL would reload the reference from the config's path without the recipe's revision.
    policy = model_reference(p.settings.models["policy"], p.recipe.base_dir)
    return load_causal_lm(policy, p.settings.model_init, "model.name_or_path")


def _against_reference(p: Pieces, callbacks: list[Any], trainer: Any, config: Any) -> Any:
    """A TRL trainer that scores the policy against a reference model (DPO, KTO)."""
    return trainer(
        model=p.model,
        ref_model=_reference_model(p),
        args=config(**p.settings.config_kwargs),
        train_dataset=p.train,
        eval_dataset=p.eval,
        processing_class=p.tokenizer,
        peft_config=_peft_config(p),
        callbacks=callbacks,
    )


def build_dpo(p: Pieces, callbacks: list[Any]) -> Any:
    """DPOTrainer on prompt/chosen/rejected rows, against a reference model."""
    from trl import DPOConfig, DPOTrainer

    return _against_reference(p, callbacks, DPOTrainer, DPOConfig)


def build_kto(p: Pieces, callbacks: list[Any]) -> Any:
    """KTOTrainer on prompt/completion/label rows, against a reference model."""
    from trl import KTOConfig, KTOTrainer

    return _against_reference(p, callbacks, KTOTrainer, KTOConfig)


def build_group_rl(p: Pieces, callbacks: list[Any]) -> Any:
    """GRPOTrainer for GRPO, GSPO, DAPO and Dr. GRPO (they differ only in settings)."""
    from trl import GRPOConfig, GRPOTrainer

    kwargs = dict(p.settings.config_kwargs)
    if kwargs["beta"] > 0 and p.settings.peft is None:
        # TRL builds the reference model itself from these (with the recipe's revision).
        init = {k: v for k, v in p.settings.model_init.items() if k != "quantization"}
        kwargs["model_init_kwargs"] = init
    return GRPOTrainer(
        model=p.model,
        reward_funcs=p.reward_funcs,
        args=GRPOConfig(**kwargs),
        train_dataset=p.train,
        eval_dataset=p.eval,
        processing_class=p.tokenizer,
        peft_config=_peft_config(p),
        callbacks=callbacks,
    )


def build_ppo(p: Pieces, callbacks: list[Any]) -> Any:
    """trl.experimental.ppo.PPOTrainer with a reward model and a value model."""
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    init, pad_id = p.settings.model_init, p.tokenizer.pad_token_id
    reward_ref = p.settings.models["reward_model"]
    value_ref = p.settings.models["value_model"]
    reward_model = load_scalar_model(reward_ref, init, "algorithm.reward_model", pad_id)
    value_model = load_scalar_model(value_ref, init, "algorithm.value_model", pad_id)
    max_length = p.recipe.data.max_length
    train = tokenize_prompts(p.train, p.tokenizer, max_length)
    evaluation = tokenize_prompts(p.eval, p.tokenizer, max_length) if p.eval is not None else None
    return PPOTrainer(
        args=PPOConfig(**p.settings.config_kwargs),
        processing_class=p.tokenizer,
        model=p.model,
        ref_model=None,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=train,
        eval_dataset=evaluation,
        peft_config=_peft_config(p),
        callbacks=callbacks,
    )


Builder = Callable[[Pieces, list[Any]], Any]


def _seeded(build: Builder) -> Builder:
    """`build` after seeding: peft_config's adapters and new scoring heads start the same."""

    @functools.wraps(build)
    def seeded(p: Pieces, callbacks: list[Any]) -> Any:
        # The trainer seeds only after its peft_config has made (randomly) the LoRA weights.
        seed(p.recipe)
        return build(p, callbacks)

    return seeded


BUILDERS: dict[type, Builder] = {
    SFTAlgorithm: _seeded(build_sft),
    DPOAlgorithm: _seeded(build_dpo),
    KTOAlgorithm: _seeded(build_kto),
    GroupRLAlgorithm: _seeded(build_group_rl),
    PPOAlgorithm: _seeded(build_ppo),
}
"""The builder for each algorithm section of the recipe (GRPO, GSPO, DAPO, Dr. GRPO share one)."""


def train_reward_model(
    recipe: Recipe, tokenizer: Any, model_init: dict[str, Any], device: str, target: Path
) -> Path:
    """Train PPO's reward model with RewardTrainer on preference data; written atomically."""
    from trl import RewardConfig, RewardTrainer

    algorithm = recipe.algorithm
    assert isinstance(algorithm, PPOAlgorithm) and algorithm.train_reward_model is not None
    spec = algorithm.train_reward_model
    if (target / "config.json").is_file():
        return target  # trained by an earlier attempt of this run
    data = load_source(spec.data, recipe.base_dir, "algorithm.train_reward_model.data")
    data = prepare(
        data,
        "preference",
        recipe.data.system_prompt,
        bool(tokenizer.chat_template),
        "algorithm.train_reward_model.data",
    )
    base = model_reference(recipe.model.name_or_path, recipe.base_dir)
    seed(recipe)  # the scoring head is new, initialised at random
    model = load_scalar_model(base, model_init, "model.name_or_path", tokenizer.pad_token_id)
    scratch = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    config = RewardConfig(
        output_dir=str(scratch / "trainer"),
        max_steps=spec.max_steps,
        learning_rate=spec.learning_rate,
        per_device_train_batch_size=recipe.training.batch_size,
        max_length=recipe.data.max_length,
        seed=recipe.training.seed,
        use_cpu=device == "cpu",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_steps=max(1, spec.max_steps // 5),
    )
    trainer = RewardTrainer(
        model=model, args=config, train_dataset=data, processing_class=tokenizer
    )
    trainer.train()
    trainer.save_model(str(scratch / "model"))
    tokenizer.save_pretrained(str(scratch / "model"))
    (scratch / "model").rename(target)
    shutil.rmtree(scratch, ignore_errors=True)
    return target
