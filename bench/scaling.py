"""Scaling: samples/s of the same tiny SFT run with 1 and with 2 processes (DDP, gloo on CPU).

Each run is the real runner (`python -m aligntune.runners.trl run`), as `aligntune run
--runtime local` starts it; with 2 processes it goes through torchrun. Every process gets the
recipe's batch (8), so 2 processes train 16 samples per step. The figures are the training
loop's samples/s as the HF Trainer reports it (global samples / train_runtime) and the wall time
of the whole command (start-up, rendezvous and saving included). Runs alternate (1, 2, 1, 2, ...)
so machine noise hits both alike.

Usage: python bench/scaling.py [--repeats N] [--steps N] [--algorithm sft|dpo]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "recipes" / "tiny"


def recipe_file(algorithm: str, processes: int, steps: int, folder: Path) -> Path:
    """The shipped tiny recipe with `processes` per node, fixed steps, no checkpoints."""
    data = yaml.safe_load((TINY / f"{algorithm}.yaml").read_text(encoding="utf-8"))
    data["training"].update(max_steps=steps, save_steps=10_000, logging_steps=5)
    data["model"]["name_or_path"] = str(TINY / "model")
    data["data"]["train"]["path"] = str(TINY / "data" / f"{algorithm}.jsonl")
    data["distributed"] = {"strategy": "ddp" if processes > 1 else "none"}
    data["distributed"]["processes_per_node"] = processes
    path = folder / f"{algorithm}-{processes}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def one_run(recipe: Path, run_dir: Path) -> tuple[float, float]:
    """(training-loop samples/s, wall seconds) of one runner process (group)."""
    command = [sys.executable, "-m", "aligntune.runners.trl", "run", str(recipe)]
    started = time.monotonic()
    result = subprocess.run(
        [*command, "--output", str(run_dir)], capture_output=True, text=True, timeout=900
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{recipe.name} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    return float(status["metrics"]["train_samples_per_second"]), wall


def main() -> None:
    """Run both settings, alternating, and print the medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--algorithm", choices=("sft", "dpo"), default="sft")
    args = parser.parse_args()
    results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="aligntune-scaling-") as tmp:
        folder = Path(tmp)
        for index in range(args.repeats):
            for processes in (1, 2):
                recipe = recipe_file(args.algorithm, processes, args.steps, folder)
                rate, wall = one_run(recipe, folder / f"run-{processes}-{index}")
                results[processes].append((rate, wall))
                print(f"  {processes} proc, run {index + 1}: {rate:.1f} samples/s, {wall:.0f} s")
    rate = {p: statistics.median(r for r, _ in runs) for p, runs in results.items()}
    wall = {p: statistics.median(w for _, w in runs) for p, runs in results.items()}
    print(
        f"tiny {args.algorithm}, {args.steps} steps, batch 8 per process, median of {args.repeats}:"
    )
    # End to end: every sample the group trained over the whole command's wall time.
    overall = {p: args.steps * 8 * p / wall[p] for p in (1, 2)}
    for processes in (1, 2):
        print(
            f"  {processes} process(es): {rate[processes]:7.1f} samples/s training loop, "
            f"{overall[processes]:6.1f} samples/s end to end ({wall[processes]:.1f} s wall)"
        )
    print(
        f"  ratio 2/1: {rate[2] / rate[1]:.2f}x training loop, "
        f"{overall[2] / overall[1]:.2f}x end to end"
    )


if __name__ == "__main__":
    main()
