"""Runner overhead: the same SFT, DPO and GRPO runs through the runner and plain TRL.

The plain side builds TRL's trainer by hand from the very settings the runner resolves (same
config, model, LoRA, seed and data files), so the ratio measures only what the runner adds:
callbacks, events, atomic checkpoint publication. Both sides must do the same work (the "same
work" column): the same number of tokens where the trainer counts them, and the same train_loss,
except for SFT, where aligntune chooses the trained tokens of each turn itself (chat_tokens.py)
and plain TRL trains the whole conversation: the same tokens pass, the loss differs.

Runs are interleaved in pairs whose order alternates (runner first, then plain first, ...), so
machine noise and warm caches hit both alike. The figure is training-loop samples/s as the HF
Trainer reports it (train_samples_per_second); the result is the median of the pairs' ratios
runner/plain, which should be >= 0.98. The step counts make each training loop last seconds on
one thread, so the one-off costs (the checkpoint at the last step) weigh no more than in a
short real run. Two figures that the other users of a shared machine
disturb less are printed too: the ratio of the training loops' CPU seconds (plain/runner, the
same steps on both sides) and the runner's own callback time: per step (its on_step_end and
on_log) and once (start, the last step's checkpoint, end).

    python bench/overhead.py [--shape tiny|larger] [--repeats N] [--threads N] [--only sft,dpo]

Both sides train with --threads torch threads (default 1): on a machine others share, fewer
threads waiting on each other make the figures steadier; the comparison stays like for like.

`larger` is the tiny model's tokenizer on a random Qwen2 of 8 layers, hidden size 256 (built
locally, like scripts/make_tiny_model.py), where fixed per-step costs weigh less.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from aligntune.core.loader import load_recipe
from aligntune.core.plan import HostInfo
from aligntune.core.selection import select_backend
from aligntune.runners.common.callbacks import RunDirectoryCallback
from aligntune.runners.trl import create_trainer

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "recipes" / "tiny"
STEPS = {"tiny": {"sft": 300, "dpo": 150, "grpo": 60}, "larger": {"sft": 60, "dpo": 30, "grpo": 16}}
LARGER = {
    "num_hidden_layers": 8,
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
}
"""The larger shape's changes to the tiny model's config."""

CALLBACK_SECONDS: dict[str, float] = {}
"""Seconds spent in each hook of the runner's callback since the last reset (`time_callbacks`)."""
PER_STEP_HOOKS = ("on_step_end", "on_log")
LOOP_CPU_SECONDS: list[float] = [0.0]
"""CPU seconds of this process in the last training loop (see `time_loops`)."""


def time_loops() -> None:
    """Record the CPU time of every Trainer's training loop (both sides) in LOOP_CPU_SECONDS."""
    from transformers import Trainer

    loop = Trainer._inner_training_loop

    @functools.wraps(loop)
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.process_time()
        try:
            return loop(*args, **kwargs)
        finally:
            LOOP_CPU_SECONDS[0] = time.process_time() - began

    Trainer._inner_training_loop = timed  # type: ignore[method-assign]


def time_callbacks() -> None:
    """Add the time of every RunDirectoryCallback hook to CALLBACK_SECONDS."""

    def timed(hook: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(hook)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                took = time.perf_counter() - began
                CALLBACK_SECONDS[hook.__name__] = CALLBACK_SECONDS.get(hook.__name__, 0) + took

        return wrapper

    for name in ("on_train_begin", "on_step_end", "on_log", "on_save", "on_train_end"):
        setattr(RunDirectoryCallback, name, timed(getattr(RunDirectoryCallback, name)))


def build_larger_model(target: Path) -> Path:
    """The tiny model's tokenizer on a random Qwen2 of the larger shape, saved to `target`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, set_seed

    set_seed(0)
    config = AutoConfig.from_pretrained(TINY / "model")
    for key, value in LARGER.items():
        setattr(config, key, value)
    config.layer_types = ["full_attention"] * LARGER["num_hidden_layers"]
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(TINY / "model").save_pretrained(target)
    return target


def recipe_file(algorithm: str, folder: Path, model: Path, steps: int) -> Path:
    """The shipped tiny recipe on `model` with a fixed step count, no intermediate checkpoints."""
    data = yaml.safe_load((TINY / f"{algorithm}.yaml").read_text(encoding="utf-8"))
    data["training"].update(max_steps=steps, save_steps=10_000)
    data["model"]["name_or_path"] = str(model)
    data["data"]["train"]["path"] = str(TINY / "data" / f"{algorithm}.jsonl")
    path = folder / f"{algorithm}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _recipe_and_plan(recipe_path: Path) -> tuple[Any, Any]:
    recipe = load_recipe(recipe_path)
    recipe.with_base_dir(TINY)
    plan = select_backend(
        recipe, HostInfo(runner_packages=frozenset({"trl"})), backend="trl", runtime="in-process"
    )
    return recipe, plan


def through_runner(recipe_path: Path, run_dir: Path) -> dict[str, float]:
    """The training loop's metrics when the runner drives TRL, and its callbacks' seconds."""
    recipe, plan = _recipe_and_plan(recipe_path)
    run = create_trainer(recipe, plan, run_dir=run_dir)
    CALLBACK_SECONDS.clear()
    metrics = run.train()
    return {
        "samples_per_second": float(metrics["train_samples_per_second"]),
        "train_loss": float(metrics["train_loss"]),
        "per_step_seconds": sum(CALLBACK_SECONDS.get(h, 0.0) for h in PER_STEP_HOOKS),
        "once_seconds": sum(v for h, v in CALLBACK_SECONDS.items() if h not in PER_STEP_HOOKS),
        "steps": float(metrics["global_step"]),
        "num_tokens": metrics.get("num_tokens"),
        "cpu_seconds": LOOP_CPU_SECONDS[0],
    }


def plain_trl(recipe_path: Path, output_dir: Path) -> dict[str, float]:
    """The training loop's metrics of a hand-built TRL trainer given the settings the runner
    resolved; seeded where the runner seeds (before the LoRA weights are made)."""
    import trl
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    from aligntune.core.rewards import load_reward
    from aligntune.runners.common.settings import resolve_settings

    recipe, plan = _recipe_and_plan(recipe_path)
    algorithm = recipe.algorithm.name
    settings = resolve_settings(recipe, plan, str(output_dir))
    config_class = getattr(trl, settings.config.rsplit(".", 1)[1])
    trainer_class = getattr(trl, settings.trainer.rsplit(".", 1)[1])
    extra: dict[str, Any] = {}
    if algorithm == "grpo":
        extra["reward_funcs"] = [load_reward(r.function, r.params, TINY) for r in recipe.rewards]
    model_path = recipe.model.name_or_path
    model = AutoModelForCausalLM.from_pretrained(model_path, **settings.model_init)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    data = load_dataset("json", data_files=str(TINY / "data" / f"{algorithm}.jsonl"))["train"]
    set_seed(recipe.training.seed)
    trainer = trainer_class(
        model=model,
        args=config_class(**settings.config_kwargs),
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=LoraConfig(**settings.peft) if settings.peft else None,
        **extra,
    )
    metrics = trainer.train().metrics
    counted = [log["num_tokens"] for log in trainer.state.log_history if "num_tokens" in log]
    return {
        "samples_per_second": float(metrics["train_samples_per_second"]),
        "train_loss": float(metrics["train_loss"]),
        "num_tokens": counted[-1] if counted else None,
        "cpu_seconds": LOOP_CPU_SECONDS[0],
    }


def same_work(algorithm: str, runner: dict[str, Any], plain: dict[str, Any]) -> bool:
    """Whether both sides trained on the same tokens (and, but for SFT, to the same loss)."""
    tokens = runner["num_tokens"] == plain["num_tokens"]
    return tokens and (algorithm == "sft" or abs(runner["train_loss"] - plain["train_loss"]) < 1e-3)


def compare(algorithm: str, folder: Path, model: Path, steps: int, repeats: int) -> dict[str, Any]:
    """`repeats` interleaved pairs (the order alternates); each pair's ratio runner/plain."""
    recipe_path = recipe_file(algorithm, folder, model, steps)
    through_runner(recipe_path, folder / f"warm-{algorithm}")  # imports and caches, both sides
    pairs: list[tuple[dict[str, float], dict[str, float]]] = []
    for index in range(repeats):
        sides: dict[str, dict[str, float]] = {}
        for side in ("runner", "plain") if index % 2 == 0 else ("plain", "runner"):
            target = folder / f"{side}-{algorithm}-{index}"
            if side == "runner":
                sides[side] = through_runner(recipe_path, target)
            else:
                sides[side] = plain_trl(recipe_path, target)
        pairs.append((sides["runner"], sides["plain"]))
        runner, plain = pairs[-1]
        print(
            f"  {algorithm} pair {index + 1}: runner {runner['samples_per_second']:.1f}, "
            f"plain {plain['samples_per_second']:.1f} samples/s, "
            f"ratio {runner['samples_per_second'] / plain['samples_per_second']:.3f}; CPU s "
            f"runner {runner['cpu_seconds']:.2f}, plain {plain['cpu_seconds']:.2f}",
            flush=True,
        )
    return {
        "ratio": statistics.median(
            r["samples_per_second"] / p["samples_per_second"] for r, p in pairs
        ),
        "runner": statistics.median(r["samples_per_second"] for r, _ in pairs),
        "plain": statistics.median(p["samples_per_second"] for _, p in pairs),
        "cpu_ratio": statistics.median(p["cpu_seconds"] / r["cpu_seconds"] for r, p in pairs),
        "same_work": all(same_work(algorithm, r, p) for r, p in pairs),
        "callback_ms_per_step": statistics.median(
            1000 * r["per_step_seconds"] / r["steps"] for r, _ in pairs
        ),
        "callback_ms_once": statistics.median(1000 * r["once_seconds"] for r, _ in pairs),
    }


def main() -> None:
    """Run the interleaved comparison and print one line per algorithm."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(STEPS), default="tiny")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument("--only", default="sft,dpo,grpo", help="comma-separated algorithms")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    time_callbacks()
    time_loops()
    load_before = os.getloadavg()
    began = time.time()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="aligntune-bench-") as tmp:
        folder = Path(tmp)
        model = TINY / "model" if args.shape == "tiny" else build_larger_model(folder / "model")
        for algorithm in args.only.split(","):
            steps = STEPS[args.shape][algorithm]
            results[algorithm] = compare(algorithm, folder, model, steps, args.repeats)
    load_after = os.getloadavg()
    print(
        f"{'algorithm':<10}{'runner samples/s':>18}{'plain samples/s':>17}{'ratio':>8}"
        f"{'CPU ratio':>11}{'hooks ms/step':>15}{'hooks ms once':>15}{'same work':>11}"
    )
    for algorithm, got in results.items():
        print(
            f"{algorithm:<10}{got['runner']:>18.1f}{got['plain']:>17.1f}{got['ratio']:>8.3f}"
            f"{got['cpu_ratio']:>11.3f}{got['callback_ms_per_step']:>15.3f}"
            f"{got['callback_ms_once']:>15.1f}"
            f"{'yes' if got['same_work'] else 'NO':>11}"
        )
    print(
        f"(shape {args.shape}, median ratio of {args.repeats} interleaved pairs each, CPU, "
        f"{args.threads} torch thread(s), "
        f"LoRA r=8, {(time.time() - began) / 60:.1f} min, "
        f"load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after, {os.cpu_count()} CPUs)"
    )


if __name__ == "__main__":
    main()
