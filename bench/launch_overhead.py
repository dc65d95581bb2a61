"""What the container costs: the same tiny recipe via --runtime docker and --runtime local.

Prints each runtime's wall times (and the runner's own train_runtime), the time from starting
`aligntune run` to the first training step (and the part of it after the runner's imports, from
the run's `first_step` event), the difference of the medians (target <= 5 s), every aligntune
image's size (target trl cpu <= 1.8 GB) and the time `aligntune images build` takes after a
runner source file changed (target <= 20 s).

    .venv/bin/python bench/launch_overhead.py [--recipe recipes/tiny/sft.yaml] [--repeats 3]
        [--skip-rebuild] [--skip-images]

Needs a docker engine, the trl cpu image, and the trl runner installed in this Python.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALIGNTUNE = [sys.executable, "-m", "aligntune.cli.main"]
RUNNER_FILE = Path("packages/trl-runner/src/aligntune/runners/trl/cli.py")


def timed_run(recipe: Path, runtime: str, output: Path) -> tuple[float, float | None, float, float]:
    """Wall seconds of one `aligntune run`, the runner's own train_runtime, and the seconds
    from the command's start (and from the runner process's start) to the first step."""
    launched = time.time()
    started = time.perf_counter()
    result = subprocess.run(
        [*ALIGNTUNE, "run", str(recipe), "--runtime", runtime, "--output", str(output), "-q"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{runtime} run failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    metrics = json.loads((output / "status.json").read_text()).get("metrics", {})
    events = [json.loads(line) for line in (output / "events.jsonl").read_text().splitlines()]
    first = next(e for e in events if e["event"] == "first_step")
    return (
        wall,
        metrics.get("train_runtime"),
        first["time"] - launched,
        first["seconds_since_start"],
    )


def compare_runtimes(recipe: Path, repeats: int) -> None:
    """Alternate the runtimes so drift on the machine hits both alike."""
    walls: dict[str, list[float]] = {"docker": [], "local": []}
    firsts: dict[str, list[tuple[float, float]]] = {"docker": [], "local": []}
    with tempfile.TemporaryDirectory(prefix="aligntune-bench-") as tmp:
        for index in range(repeats):
            for runtime in walls:
                wall, train, first, inside = timed_run(
                    recipe, runtime, Path(tmp) / f"{runtime}-{index}"
                )
                walls[runtime].append(wall)
                firsts[runtime].append((first, inside))
                print(
                    f"  {runtime:6} run {index + 1}: {wall:6.2f} s wall (train_runtime {train} s),"
                    f" first step after {first:.2f} s ({inside:.2f} s after the runner's imports)"
                )
    medians = {runtime: statistics.median(values) for runtime, values in walls.items()}
    for runtime, values in walls.items():
        first = statistics.median(f for f, _ in firsts[runtime])
        inside = statistics.median(i for _, i in firsts[runtime])
        print(
            f"{runtime:6}: median {medians[runtime]:.2f} s  "
            f"(min {min(values):.2f}, max {max(values):.2f}); to the first step: median "
            f"{first:.2f} s, {inside:.2f} s of them after the runner's imports"
        )
    difference = medians["docker"] - medians["local"]
    print(
        f"container overhead (median docker - median local): {difference:+.2f} s  (target <= 5 s)"
    )


def image_sizes() -> None:
    """Each aligntune image and its size."""
    out = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "aligntune/*"],
        capture_output=True,
        text=True,
    ).stdout
    for line in sorted(out.splitlines()):
        tag, _ = line.split()
        size = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True
        ).stdout
        print(f"image {tag}: {int(size) / 1e9:.2f} GB")


def rebuild_after_edit() -> None:
    """Time `aligntune images build` on a copy of the checkout whose runner source changed."""
    with tempfile.TemporaryDirectory(prefix="aligntune-rebuild-") as tmp:
        copy = Path(tmp) / "src"
        for part in ("images", "packages", "scripts", ".dockerignore"):
            source = REPO / part
            if source.is_dir():
                shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, copy / part)
        # Hard links: the wheelhouse is hundreds of MB and must be real files in the context.
        shutil.copytree(REPO / ".wheelhouse", copy / ".wheelhouse", copy_function=os.link)
        env = {**os.environ, "ALIGNTUNE_SOURCE": str(copy)}
        build = [*ALIGNTUNE, "images", "build", "trl-runner", "--device", "cpu"]
        for label in ("no change", f"after editing {RUNNER_FILE}"):
            if label != "no change":
                with (copy / RUNNER_FILE).open("a") as handle:
                    handle.write(f"\n# bench edit {time.time()}\n")
            started = time.perf_counter()
            result = subprocess.run(build, env=env, cwd=copy, capture_output=True, text=True)
            took = time.perf_counter() - started
            if result.returncode != 0:
                sys.exit(f"rebuild failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            print(
                f"rebuild ({label}): {took:.1f} s"
                + ("" if label == "no change" else "  (target <= 20 s)")
            )


def main() -> None:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "tiny" / "sft.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-rebuild", action="store_true", help="do not time a rebuild")
    parser.add_argument("--skip-images", action="store_true", help="do not list image sizes")
    args = parser.parse_args()
    print(f"recipe {args.recipe}, {args.repeats} repeats per runtime")
    compare_runtimes(args.recipe.resolve(), args.repeats)
    if not args.skip_images:
        image_sizes()
    if not args.skip_rebuild:
        rebuild_after_edit()


if __name__ == "__main__":
    main()
