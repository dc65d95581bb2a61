"""One GPU-check measurement in its own interpreter: train one recipe through one runner's own
`create_trainer` (the path users run) and print `BENCH {json}` with what was measured.

    python bench/gpu_child.py BACKEND RECIPE RUN_DIR

Unsloth is imported first, as its runner does (it patches trl and transformers on import), which
is why each backend's measurements run in a process of their own. Measured: the seconds from
`create_trainer` to the runner's `start` event (the model's load, quantization included),
seconds per step and tokens/s from the runner's per-step log events (the first 2 steps,
compilation and autotuning, left out), peak GPU memory, and for GRPO the share of the steps
spent generating, read from the timings TRL's trainers take around generation
(`trl.extras.profiling`).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

WARMUP_STEPS = 2


def generation_timer() -> dict[int, float]:
    """Seconds spent in TRL's generation blocks, by training step (filled while training)."""
    from trl.extras import profiling

    spent: dict[int, float] = {}
    original = profiling.ProfilingContext._log_metrics

    def record(self: Any, duration: float) -> None:
        if "generate" in self.name:
            spent[self.step or 0] = spent.get(self.step or 0, 0.0) + duration
        original(self, duration)

    profiling.ProfilingContext._log_metrics = record
    return spent


def measure(backend: str, recipe_path: str, out: str) -> dict[str, Any]:
    if backend == "unsloth":
        importlib.import_module("unsloth")
    import torch

    from aligntune.core.loader import load_recipe
    from aligntune.core.plan import GpuInfo, HostInfo
    from aligntune.core.selection import select_backend

    runner = importlib.import_module(f"aligntune.runners.{backend}")
    recipe = load_recipe(recipe_path)
    cuda = torch.cuda.is_available()
    gpus = (GpuInfo(torch.cuda.get_device_name(0)),) if cuda else ()
    host = HostInfo(gpus=gpus, runner_packages=frozenset({backend}))
    plan = select_backend(recipe, host, backend=backend, runtime="in-process")
    generation = generation_timer()
    started = time.time()
    run = runner.create_trainer(recipe, plan, run_dir=out)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    run.train()
    lines = (Path(out) / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = list(map(json.loads, lines))
    logs = [e for e in events if e["event"] == "log"]
    # The model loads (and is quantized) between create_trainer and the runner's `start` event.
    load_s = next(e["time"] for e in events if e["event"] == "start") - started
    first, last = logs[WARMUP_STEPS], logs[-1]
    steps = last["step"] - first["step"]
    if steps <= 0:
        raise SystemExit(f"only {len(logs)} logged steps: raise the case's steps")
    seconds = last["time"] - first["time"]
    result: dict[str, Any] = {
        "load_s": load_s,
        "step_s": seconds / steps,
        "steps_per_s": steps / seconds,
        "tokens_per_s": None,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "generation_share": None,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "steps": last["step"],
    }
    if "num_tokens" in first and "num_tokens" in last:
        result["tokens_per_s"] = (last["num_tokens"] - first["num_tokens"]) / seconds
    if generation:
        measured = range(first["step"], last["step"])
        result["generation_share"] = sum(generation.get(s, 0.0) for s in measured) / seconds
    return result


if __name__ == "__main__":
    print("BENCH " + json.dumps(measure(*sys.argv[1:4])), flush=True)
