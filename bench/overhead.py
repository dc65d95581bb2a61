"""Runner overhead: the same tiny SFT, DPO and GRPO runs through the runner and plain TRL.

Runs are interleaved (runner, plain, runner, plain, ...) so machine noise hits both alike. The
figure is training-loop samples/s as the HF Trainer reports it (train_samples_per_second);
the ratio runner/plain should be >= 0.98. Usage: python bench/overhead.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml

from aligntune.core.loader import load_recipe
from aligntune.core.selection import HostInfo, select_backend
from aligntune.runners.trl import create_trainer

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "recipes" / "tiny"
STEPS = {"sft": 20, "dpo": 10, "grpo": 4}


def recipe_file(algorithm: str, folder: Path) -> Path:
    """The shipped tiny recipe with a fixed step count and no intermediate checkpoints."""
    data = yaml.safe_load((TINY / f"{algorithm}.yaml").read_text(encoding="utf-8"))
    data["training"].update(max_steps=STEPS[algorithm], save_steps=10_000)
    data["model"]["name_or_path"] = str(TINY / "model")
    data["data"]["train"]["path"] = str(TINY / "data" / f"{algorithm}.jsonl")
    path = folder / f"{algorithm}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def through_runner(algorithm: str, folder: Path, index: int) -> float:
    """samples/s of the training loop when the runner drives TRL."""
    recipe = load_recipe(recipe_file(algorithm, folder))
    recipe.with_base_dir(TINY)
    plan = select_backend(
        recipe, HostInfo(runner_packages=frozenset({"trl"})), backend="trl", runtime="in-process"
    )
    run = create_trainer(recipe, plan, run_dir=folder / f"runner-{algorithm}-{index}")
    return float(run.train()["train_samples_per_second"])


def plain_trl(algorithm: str, folder: Path, index: int) -> float:
    """samples/s of the same settings in a hand-written TRL script (what a user would write)."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = load_recipe(recipe_file(algorithm, folder))
    tokenizer = AutoTokenizer.from_pretrained(TINY / "model")
    model = AutoModelForCausalLM.from_pretrained(TINY / "model", dtype="float32")
    data = load_dataset("json", data_files=str(TINY / "data" / f"{algorithm}.jsonl"), split="train")
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    common: dict[str, Any] = {
        "output_dir": str(folder / f"plain-{algorithm}-{index}"), "max_steps": STEPS[algorithm],
        "per_device_train_batch_size": recipe.training.batch_size, "use_cpu": True,
        "learning_rate": recipe.training.learning_rate, "logging_steps": 1, "save_strategy": "no",
        "report_to": "none", "seed": 42, "disable_tqdm": True,
    }  # fmt: skip
    trainer = _plain_trainer(algorithm, model, tokenizer, data, lora, common, recipe)
    return float(trainer.train().metrics["train_samples_per_second"])


def _plain_trainer(
    algorithm: str,
    model: Any,
    tokenizer: Any,
    data: Any,
    lora: Any,
    common: dict[str, Any],
    recipe: Any,
) -> Any:
    from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    if algorithm == "sft":
        return SFTTrainer(
            model=model,
            args=SFTConfig(max_length=64, **common),
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora,
        )
    if algorithm == "dpo":
        return DPOTrainer(
            model=model,
            args=DPOConfig(max_length=64, beta=0.1, **common),
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora,
        )
    from aligntune.core.rewards import load_reward

    rewards = [load_reward(r.function, r.params, TINY) for r in recipe.rewards]
    config = GRPOConfig(
        num_generations=4,
        max_completion_length=16,
        loss_type="grpo",
        beta=0.0,
        reward_weights=[r.weight for r in recipe.rewards],
        **common,
    )
    return GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora,
    )


def main() -> None:
    """Run the interleaved comparison and print one line per algorithm."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aligntune-bench-") as tmp:
        folder = Path(tmp)
        results: dict[str, dict[str, list[float]]] = {}
        for algorithm in STEPS:
            runner, plain = [], []
            through_runner(algorithm, folder, -1)  # warm-up: imports and caches for both sides
            for index in range(args.repeats):
                runner.append(through_runner(algorithm, folder, index))
                plain.append(plain_trl(algorithm, folder, index))
            results[algorithm] = {"runner": runner, "plain": plain}
    print(f"{'algorithm':<10}{'runner samples/s':>18}{'plain TRL samples/s':>22}{'ratio':>8}")
    for algorithm, got in results.items():
        runner, plain = statistics.median(got["runner"]), statistics.median(got["plain"])
        print(f"{algorithm:<10}{runner:>18.1f}{plain:>22.1f}{runner / plain:>8.3f}")
    print(f"(median of {args.repeats} interleaved repeats each, CPU, tiny Qwen2, LoRA r=8)")


if __name__ == "__main__":
    main()
