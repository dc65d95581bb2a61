"""TRL vs Unsloth on one CUDA GPU: the same LoRA SFT recipe (and one GRPO recipe) on a randomly
initialised Qwen2 with Qwen2.5-0.5B's shape (no download), tokens/s and peak GPU memory of each.

    python bench/backends_gpu.py --trl-python .venv/bin/python \
        --unsloth-python .venv-unsloth/bin/python [--steps 30] [--work DIR]

`--smoke` runs the same code path with a tiny model in fp32 on whatever device there is (CPU in
CI, where a test runs it), so the script is known to work before a GPU is spent on it; its
figures compare nothing.

Each backend trains in its own interpreter (Unsloth patches trl/transformers on import), through
the runner's own `create_trainer`, so the measured path is the one users run. Targets (the
issue's): Unsloth >= 1.6x TRL's tokens/s and <= 0.6x its peak memory. Prints "not measured"
rather than a number whenever a run fails.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

QWEN2_05B_SHAPE = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}
"""Qwen/Qwen2.5-0.5B's config.json dimensions (public), initialised randomly here."""
TINY_SHAPE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 2048,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}
"""The --smoke shape: the bench's code path in seconds, on CPU."""
TARGET_SPEEDUP = 1.6
TARGET_MEMORY = 0.6
WORDS = "the of and to in is was for on that with as by at from it an be this are".split()  # noqa: SIM905


def make_model(folder: Path, shape: dict[str, Any], dtype: str) -> None:
    """A random Qwen2 of `shape` with a small BPE tokenizer, saved in `dtype`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=specials)
    raw.train_from_iterator([" ".join(WORDS)] * 50 + ["0123456789 +-=?"], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
        "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    config = Qwen2Config(**shape, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    Qwen2ForCausalLM(config).to(getattr(torch, dtype)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def write_data(folder: Path, words: int, rows: int = 512) -> None:
    """Text rows of `words` words for SFT, arithmetic prompts for GRPO."""
    rng = random.Random(0)
    with (folder / "sft.jsonl").open("w") as handle:
        for _ in range(rows):
            handle.write(json.dumps({"text": " ".join(rng.choices(WORDS, k=words))}) + "\n")
    with (folder / "grpo.jsonl").open("w") as handle:
        for _ in range(rows):
            a, b = rng.randint(1, 50), rng.randint(1, 50)
            handle.write(json.dumps({"prompt": f"{a} + {b} =", "answer": str(a + b)}) + "\n")


def model_folder(smoke: bool) -> str:
    """The model's folder in the work dir: the two shapes never share one."""
    return "model-smoke" if smoke else "model"


def recipe(kind: str, backend: str, steps: int, smoke: bool) -> dict[str, Any]:
    """The benchmark recipe: identical for both backends except `backend`."""
    base: dict[str, Any] = {
        "backend": backend,
        "model": {"name_or_path": f"./{model_folder(smoke)}",
                  "peft": {"method": "lora", "r": 16, "alpha": 32}},
        "training": {"max_steps": steps, "batch_size": 2 if smoke else 8, "learning_rate": 1e-4,
                     "precision": "fp32" if smoke else "bf16", "save_steps": 10_000,
                     "logging_steps": 1},
        "output": {"save_final": False},
    }  # fmt: skip
    if kind == "sft":
        base["algorithm"] = {"name": "sft"}
        base["data"] = {"train": {"path": "./sft.jsonl"}, "max_length": 128 if smoke else 1024}
    else:
        completion = 16 if smoke else 128
        base["algorithm"] = {
            "name": "grpo",
            "num_generations": 2 if smoke else 8,
            "max_completion_length": completion,
        }
        base["data"] = {"train": {"path": "./grpo.jsonl"}, "max_length": 256}
        base["rewards"] = [{"function": "numeric_match", "params": {"column": "answer"}}]
    return base


CHILD = """
import json, sys, time
backend, recipe_path, out = sys.argv[1:4]
if backend == "unsloth":
    import unsloth  # noqa: F401  (first, as the runner does)
import torch
from aligntune.core.loader import load_recipe
from aligntune.core.plan import GpuInfo, HostInfo
from aligntune.core.selection import select_backend
import importlib
runner = importlib.import_module(f"aligntune.runners.{backend}")
recipe = load_recipe(recipe_path)
cuda = torch.cuda.is_available()
gpus = (GpuInfo(torch.cuda.get_device_name(0)),) if cuda else ()
host = HostInfo(gpus=gpus, runner_packages=frozenset({backend}))
plan = select_backend(recipe, host, backend=backend, runtime="in-process")
run = runner.create_trainer(recipe, plan, run_dir=out)
if cuda:
    torch.cuda.reset_peak_memory_stats()
metrics = run.train()
events = [json.loads(l) for l in open(f"{out}/events.jsonl")]
logs = [e for e in events if e["event"] == "log" and "num_tokens" in e]
# Skip the first 3 steps (compilation, autotuning) when timing.
t0, n0 = logs[2]["time"], logs[2]["num_tokens"]
t1, n1 = logs[-1]["time"], logs[-1]["num_tokens"]
print("BENCH " + json.dumps({"tokens_per_s": (n1 - n0) / (t1 - t0),
      "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
      "gpu": torch.cuda.get_device_name(0) if cuda else "none (CPU)",
      "steps": metrics.get("global_step")}))
"""


def run_one(
    python: str, backend: str, kind: str, work: Path, steps: int, smoke: bool
) -> dict[str, Any] | None:
    """Train one recipe in `python`; its measurements, or None (printed why) on failure."""
    import yaml

    path = work / f"{kind}-{backend}.yaml"
    path.write_text(yaml.safe_dump(recipe(kind, backend, steps, smoke)))
    out = work / f"run-{kind}-{backend}"
    done = subprocess.run([python, "-c", CHILD, backend, str(path), str(out)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    print(f"{kind}/{backend}: failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return None


def report(
    kind: str, trl: dict[str, Any] | None, unsloth: dict[str, Any] | None, smoke: bool
) -> bool:
    """Print one comparison; whether both targets were met (with --smoke: both runs measured)."""

    def show(name: str, r: dict[str, Any] | None) -> None:
        if r is None:
            print(f"  {name:8s} not measured")
            return
        peak = "peak memory not measured (no CUDA)"
        if r["peak_gib"] is not None:
            peak = f"{r['peak_gib']:6.2f} GiB peak"
        print(f"  {name:8s} {r['tokens_per_s']:10.0f} tokens/s  {peak}")

    setup = "tiny model, fp32, batch 2" if smoke else "bf16, batch 8, random Qwen2 0.5B shape"
    print(f"{kind} (LoRA r=16, {setup}):")
    show("trl", trl)
    show("unsloth", unsloth)
    if trl is None or unsloth is None:
        print("  ratios: not measured")
        return False
    print(f"  device: {unsloth['gpu']}")
    if smoke:
        print("  ratios: none (--smoke checks that the benchmark runs; it compares nothing)")
        return True
    speed = unsloth["tokens_per_s"] / trl["tokens_per_s"]
    memory = unsloth["peak_gib"] / trl["peak_gib"]
    ok = speed >= TARGET_SPEEDUP and memory <= TARGET_MEMORY
    print(
        f"  unsloth/trl: {speed:.2f}x tokens/s (target >= {TARGET_SPEEDUP}), "
        f"{memory:.2f}x peak memory (target <= {TARGET_MEMORY}) -> {'met' if ok else 'NOT met'}"
    )
    return ok


def main() -> int:
    """Make the model and data, train each recipe on each backend, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trl-python", default=".venv/bin/python")
    parser.add_argument("--unsloth-python", default=".venv-unsloth/bin/python")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--grpo-steps", type=int, default=10)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny model, fp32, any device: the code path only"
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="aligntune-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / model_folder(args.smoke)
    if not (model / "config.json").is_file():
        if args.smoke:
            make_model(model, TINY_SHAPE, "float32")
        else:
            make_model(model, QWEN2_05B_SHAPE, "bfloat16")
    write_data(work, words=60 if args.smoke else 900)
    results = {}
    for kind, steps in (("sft", args.steps), ("grpo", args.grpo_steps)):
        trl = run_one(args.trl_python, "trl", kind, work, steps, args.smoke)
        unsloth = run_one(args.unsloth_python, "unsloth", kind, work, steps, args.smoke)
        results[kind] = report(kind, trl, unsloth, args.smoke)
    if args.smoke:
        return 0 if all(results.values()) else 1
    return 0 if results.get("sft") else 1


if __name__ == "__main__":
    sys.exit(main())
