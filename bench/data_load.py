"""What a launched run's runner does with a big local data file before its first step, before and
after this code's changes, side by side: seconds and peak memory (RSS), each in a fresh process.

    .venv/bin/python bench/data_load.py [--gb 1.0] [--tokenize-mb 20] [--before REF] [--dir /tmp]

Writes a JSON Lines file of chat rows (bench/data_check.py's, 547 bytes a row) under --dir, and
checks out REF (default: the commit before these changes) in a temporary git worktree. Phases:

- rows: the runner's own check of the file (before; now skipped, the launcher's plan vouching
  for it, which costs the file's identity) and reading its rows into aligntune's shape
  (`sources.read_sources`); `datasets.load_dataset("json")` on the same file for reference.
- tokenized: the whole SFT loading (`data.load_data`: rows, then every conversation tokenized
  with labels) with the tiny model's tokenizer and data.max_length 1024, on the file's first
  --tokenize-mb MB only: that tokenizer gives about one token a character.

Peak RSS is the process's high-water mark less the one after its imports. Deletes what it wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from data_check import write_file

REPO = Path(__file__).resolve().parents[1]
BEFORE = "8a4e2bd"
"""main before the runner trusted the launcher's check, streamed its rows and built its
tokenized data in Arrow chunks."""
TOKENIZER = REPO / "recipes" / "tiny" / "model"


MAX_LENGTH = 1024
"""data.max_length: the trainer keeps each row's first 1024 tokens, as the loading now does."""


def _recipe(path: Path) -> Any:
    from aligntune.core.loader import recipe_from_dict

    data = {"train": {"path": str(path)}, "max_length": MAX_LENGTH}
    recipe = {"algorithm": {"name": "sft"}, "model": {"name_or_path": "org/model"}, "data": data}
    return recipe_from_dict(recipe, base_dir=path.parent)


def child(phase: str, path: Path, plan_file: Path | None) -> None:
    """One phase in this process; prints seconds, MB of peak RSS above the imports, rows."""
    import datasets  # every phase's heavy import, before the baseline

    from aligntune.core.preflight import check_inputs
    from aligntune.runners.common.sources import read_sources

    recipe = _recipe(path)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if phase == "datasets":
        cache = tempfile.mkdtemp(prefix="aligntune-bench-cache-", dir=path.parent)
        rows = len(datasets.load_dataset("json", data_files=str(path), cache_dir=cache)["train"])
    elif phase == "tokenized":
        from transformers import AutoTokenizer

        from aligntune.runners.common.data import load_data

        tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        rows = len(load_data(recipe, tokenizer).train)
    else:
        if plan_file is None:  # the runner before: its own check of every row
            check_inputs(recipe)
        else:
            from aligntune.core.checked_data import unchanged

            known = unchanged(recipe, json.loads(plan_file.read_text()))
            assert known, "the launcher's plan does not vouch for the file"
            check_inputs(recipe, known)
        rows = len(read_sources(recipe, recipe.data.train_sources(), True)[1])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "rows": rows}))


def measure(tree: Path, phase: str, path: Path, plan_file: Path | None = None) -> dict[str, Any]:
    """`child` in a fresh interpreter that imports aligntune from `tree`."""
    sources = [str(p) for p in sorted((tree / "packages").glob("*/src"))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*sources, str(REPO / "bench")]))
    env["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    args = [sys.executable, __file__, "--child", phase, str(path)]
    args += ["--plan", str(plan_file)] if plan_file else []
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{phase} in {tree} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.splitlines()[-1]))


def launcher_plan(path: Path, plan_file: Path) -> None:
    """What `aligntune run` hands the runner after its check of the file (this tree's code)."""
    from aligntune.core.checked_data import CHECKED_KEY, handoff
    from aligntune.core.preflight import check_inputs

    recipe = _recipe(path)
    plan_file.write_text(json.dumps({CHECKED_KEY: handoff(recipe, check_inputs(recipe))}))


def first_lines(path: Path, target: Path, size: int) -> None:
    """The first whole lines of `path`, at least `size` bytes of them, into `target`."""
    with path.open("rb") as source, target.open("wb") as out:
        while out.tell() < size:
            line = source.readline()
            if not line:
                break
            out.write(line)


def row(name: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    ratio_s = after["seconds"] / before["seconds"]
    ratio_mb = after["peak_mb"] / before["peak_mb"]
    return (
        f"| {name} | {before['seconds']:.1f} | {after['seconds']:.1f} | {ratio_s:.2f} | "
        f"{before['peak_mb']:,.0f} | {after['peak_mb']:,.0f} | {ratio_mb:.2f} |"
    )


def main() -> None:
    """Write the data, run each phase on the code before and after, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--tokenize-mb", type=float, default=20.0)
    parser.add_argument("--before", default=BEFORE, help="git ref of the code before")
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--child", nargs=2, metavar=("PHASE", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.plan)
        return
    work = Path(tempfile.mkdtemp(prefix="aligntune-bench-load-", dir=args.dir))
    old = work / "before"
    git = ["git", "-C", str(REPO), "worktree"]
    subprocess.run([*git, "add", "-q", "--detach", str(old), args.before], check=True)
    load = [os.getloadavg()[0]]
    try:
        data, part = work / "chat.jsonl", work / "chat-part.jsonl"
        rows = write_file(data, int(args.gb * 1e9), 1.0)
        first_lines(data, part, int(args.tokenize_mb * 1e6))
        plan = work / "plan.json"
        launcher_plan(data, plan)
        results = {
            "rows": (measure(old, "rows", data), measure(REPO, "rows", data, plan)),
            "tokenized": (measure(old, "tokenized", part), measure(REPO, "tokenized", part)),
        }
        reference = measure(REPO, "datasets", data)
        load.append(os.getloadavg()[0])
        size, part_size = data.stat().st_size, part.stat().st_size
    finally:
        subprocess.run([*git, "remove", "--force", str(old)], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"file: {size / 1e9:.2f} GB, {rows} rows; tokenized: the first {part_size / 1e6:.0f} MB")
    print(
        f"before: {args.before}; after: this checkout; load average {load[0]:.1f} at the start, "
        f"{load[-1]:.1f} at the end"
    )
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {sys.platform}")
    print("| phase | before s | after s | ratio | before peak MB | after peak MB | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, (before, after) in results.items():
        print(row(name, before, after))
    seconds, peak = reference["seconds"], reference["peak_mb"]
    print(f'| rows, `datasets.load_dataset("json")` | | {seconds:.1f} | | | {peak:,.0f} | |')
    for name, (before, after) in results.items():
        mb = (size if name == "rows" else part_size) / 2**20
        times = (before["peak_mb"] / mb, after["peak_mb"] / mb)
        print(f"{name}: peak RSS {times[0]:.1f}x the file before, {times[1]:.1f}x after")
    print(f"datasets.load_dataset: {peak / (size / 2**20):.1f}x the file")


if __name__ == "__main__":
    main()
