"""Runner overhead: the same tiny SFT, DPO and GRPO runs through the runner and plain TRL.

The plain side builds TRL's trainer by hand from the very settings the runner resolves (same
config, model, LoRA and data files), so the ratio measures only what the runner adds: data
checks, callbacks, events, atomic checkpoint publication.

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
from aligntune.core.plan import HostInfo
from aligntune.core.selection import select_backend
from aligntune.runners.trl import create_trainer

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "recipes" / "tiny"
STEPS = {"sft": 60, "dpo": 30, "grpo": 12}


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
    """samples/s of a hand-built TRL trainer given exactly the settings the runner resolved."""
    import trl
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aligntune.core.rewards import load_reward
    from aligntune.runners.common.settings import resolve_settings

    recipe = load_recipe(recipe_file(algorithm, folder))
    recipe.with_base_dir(TINY)
    plan = select_backend(
        recipe, HostInfo(runner_packages=frozenset({"trl"})), backend="trl", runtime="in-process"
    )
    settings = resolve_settings(recipe, plan, str(folder / f"plain-{algorithm}-{index}"))
    config_class = getattr(trl, settings.config.rsplit(".", 1)[1])
    trainer_class = getattr(trl, settings.trainer.rsplit(".", 1)[1])
    extra: dict[str, Any] = {}
    if algorithm == "grpo":
        extra["reward_funcs"] = [load_reward(r.function, r.params, TINY) for r in recipe.rewards]
    trainer = trainer_class(
        model=AutoModelForCausalLM.from_pretrained(TINY / "model", **settings.model_init),
        args=config_class(**settings.config_kwargs),
        train_dataset=load_dataset(
            "json", data_files=str(TINY / "data" / f"{algorithm}.jsonl"), split="train"
        ),
        processing_class=AutoTokenizer.from_pretrained(TINY / "model"),
        peft_config=LoraConfig(**settings.peft) if settings.peft else None,
        **extra,
    )
    return float(trainer.train().metrics["train_samples_per_second"])


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
