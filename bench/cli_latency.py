"""Median wall time of `aligntune --help`, `validate` and `plan` (target: <= 0.3 s each).

Usage: python bench/cli_latency.py [--runs 10] [--recipe recipes/tiny/sft.yaml]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3


def median_walls(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Median seconds of `runs` executions of each command, after one warm-up run each.

    The commands take turns (round-robin), so a machine that speeds up or slows down during the
    benchmark (a shared VM does) shifts every command alike instead of whichever ran last.
    """
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs + 1):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=False)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds[1:]) for name, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--recipe", default="recipes/tiny/sft.yaml")
    args = parser.parse_args()
    exe = shutil.which("aligntune", path=str(Path(sys.executable).parent)) or "aligntune"
    commands = {
        "aligntune --help": [exe, "--help"],
        "aligntune validate": [exe, "validate", args.recipe],
        "aligntune plan": [exe, "plan", args.recipe],
    }
    print(f"{'command':<22}{'median s':>10}  target {TARGET_S} s  ({args.runs} runs)")
    for name, seconds in median_walls(commands, args.runs).items():
        verdict = "ok" if seconds <= TARGET_S else "SLOW"
        print(f"{name:<22}{seconds:>10.3f}  {verdict}")


if __name__ == "__main__":
    main()
