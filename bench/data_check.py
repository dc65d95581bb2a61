"""Rows/s and seconds per GB of the data check `aligntune validate` runs on every row of a local
JSON Lines file, on a generated file of chat rows (written under --dir, deleted afterwards).

Usage: python bench/data_check.py [--gb 1.0] [--dir /tmp] [--runs 3] [--short] [--sharegpt]
       [--breakdown]

--short writes rows half as long; --sharegpt writes ShareGPT rows (`conversations` of
`{from, value}`) instead of OpenAI `messages`; --breakdown also times reading the file alone and
reading plus JSON-decoding it alone, the floor under the check. Each run's CPU time is printed
too: on a shared machine it moves far less than the wall time.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from aligntune.core.data import FORMAT_COLUMNS
from aligntune.core.data_check import check_local_data
from aligntune.core.data_readers import blocks

WORDS = ["the", "a", "cat", "dog", "capital", "of", "France", "is", "Paris", "what", "how", "many",
         "apples", "are", "there", "in", "total"]  # fmt: skip
DISTINCT_ROWS = 10_000
"""Rows generated; the file repeats them (decoding costs the same for a repeated line)."""


def chat_row(rng: random.Random, scale: float, sharegpt: bool = False) -> str:
    """One chat row: a user turn of 5-60 words and an assistant turn of 10-120, scaled; OpenAI
    `messages`, or ShareGPT `conversations`."""
    user = " ".join(rng.choices(WORDS, k=int(rng.randint(5, 60) * scale)))
    answer = " ".join(rng.choices(WORDS, k=int(rng.randint(10, 120) * scale)))
    if sharegpt:
        turns = [{"from": "human", "value": user}, {"from": "gpt", "value": answer}]
        return json.dumps({"conversations": turns}) + "\n"
    turns = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": turns}) + "\n"


def write_file(path: Path, size: int, scale: float, sharegpt: bool = False) -> int:
    """Write at least `size` bytes of chat rows to `path`; the number of rows."""
    rng = random.Random(0)
    block = "".join(chat_row(rng, scale, sharegpt) for _ in range(DISTINCT_ROWS)).encode()
    repeats = -(-size // len(block))
    with path.open("wb") as handle:
        for _ in range(repeats):
            handle.write(block)
    return repeats * DISTINCT_ROWS


def read_lines(path: Path) -> None:
    """Read the file as the check does: blocks of whole lines, UTF-8 decoded, split."""
    with path.open("rb") as handle:
        for block in blocks(handle):
            block.decode("utf-8").split("\n")


def decode_lines(path: Path) -> None:
    """Read the file as the check does and decode every line with json's C scanner."""
    scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
    with path.open("rb") as handle:
        for block in blocks(handle):
            for line in block.decode("utf-8").split("\n"):
                if line:
                    scan(line, 0)


def median_seconds(work: Callable[[], object], runs: int) -> tuple[float, list[float], list[float]]:
    """The median wall time of `runs` calls of `work`, every wall time and every CPU time."""
    seconds, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        work()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(seconds), seconds, cpu


def main() -> None:
    """Generate the file, check it --runs times, print the figures, delete the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--short", action="store_true", help="rows half as long")
    parser.add_argument("--sharegpt", action="store_true", help="ShareGPT rows, not messages")
    parser.add_argument("--breakdown", action="store_true", help="also time reading, decoding")
    args = parser.parse_args()
    path = Path(args.dir) / "aligntune-bench-data.jsonl"
    formats = tuple(FORMAT_COLUMNS)
    try:
        rows = write_file(path, int(args.gb * 1e9), 0.5 if args.short else 1.0, args.sharegpt)
        size = path.stat().st_size
        median, seconds, cpu = median_seconds(
            lambda: check_local_data(path, {}, "auto", formats), args.runs
        )
        floors = {
            name: median_seconds(partial(work, path), args.runs)[0]
            for name, work in (("read", read_lines), ("read and decode", decode_lines))
            if args.breakdown
        }
    finally:
        path.unlink(missing_ok=True)
    shape = "ShareGPT conversations" if args.sharegpt else "chat messages"
    print(f"file: {size / 1e9:.2f} GB, {rows} rows of {size / rows:.0f} bytes ({shape})")
    print(f"runs (s): {', '.join(f'{s:.1f}' for s in seconds)}")
    print(f"cpu (s): {', '.join(f'{s:.1f}' for s in cpu)}")
    print(f"median: {rows / median:,.0f} rows/s, {size / 1e6 / median:.0f} MB/s")
    print(f"seconds for 1 GB: {median * 1e9 / size:.1f}")
    for name, floor in floors.items():
        print(f"{name} alone: {floor:.2f} s, {floor / median:.0%} of the check")


if __name__ == "__main__":
    main()
