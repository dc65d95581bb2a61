"""TRL vs Unsloth on one CUDA GPU, no download: the same recipes and data through both runners,
one after the other, each in its own interpreter; writes gpu-results.json and gpu-results.md.

    python bench/backends_gpu.py --trl-python PY --unsloth-python PY [--work DIR] [--smoke]
        [--no-recipes | --recipes NAME ...] [--only CASE ...] [--steps-scale X]

Cases (random Qwen2 of Qwen2.5's real shapes, bf16, see gpu_models.py): LoRA SFT tokens/s and
peak memory (0.5B), QLoRA 4-bit SFT load time and step time (1.5B), full bf16 SFT (1.5B), GRPO
step time and generation share (0.5B), DPO steps/s (0.5B). Then every tiny recipe once through
both runners (gpu_smoke.py). A row that fails says "not measured" with the reason; the others
go on. `--smoke` runs the same code path with the tiny shape in fp32 on whatever device there
is (CPU in CI); its figures compare nothing. Targets (the issue's): Unsloth >= 1.6x TRL's LoRA
SFT tokens/s at <= 0.6x its peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_models
import gpu_smoke

BACKENDS = ("trl", "unsloth")
TARGET_SPEEDUP = 1.6
TARGET_MEMORY = 0.6
CHILD = Path(__file__).with_name("gpu_child.py")


@dataclass(frozen=True)
class Case:
    """One row pair of the table: a recipe both backends train."""

    name: str
    title: str
    algorithm: str
    shape: str
    peft: str  # lora, qlora or full
    steps: int
    batch: int
    max_length: int


CASES = (
    Case("lora-sft", "LoRA SFT, 0.5B", "sft", "0.5b", "lora", 30, 8, 1024),
    Case("qlora-sft", "QLoRA 4-bit SFT, 1.5B", "sft", "1.5b", "qlora", 15, 8, 1024),
    Case("full-sft", "full bf16 SFT, 1.5B", "sft", "1.5b", "full", 15, 4, 1024),
    Case("grpo", "GRPO (LoRA), 0.5B", "grpo", "0.5b", "lora", 8, 8, 256),
    Case("dpo", "DPO (LoRA), 0.5B", "dpo", "0.5b", "lora", 20, 4, 512),
)
"""Steps budgeted for < 8 minutes on one H200 with both backends (a 0.5B LoRA step ~0.2 s;
most of the time is each process's start, load and compilation)."""


def recipe(case: Case, backend: str, smoke: bool, scale: float) -> dict[str, Any]:
    """The case's recipe: identical for both backends except `backend`."""
    model: dict[str, Any] = {"name_or_path": f"./model-{'tiny' if smoke else case.shape}"}
    if case.peft == "full":
        model["peft"] = {"method": "full"}
    else:
        model["peft"] = {"method": "lora", "r": 16, "alpha": 32}
    if case.peft == "qlora":
        model["quantization"] = "4bit"
    data: dict[str, Any] = {"train": {"path": f"./{case.algorithm}.jsonl"}}
    data["max_length"] = 128 if smoke else case.max_length
    algorithm: dict[str, Any] = {"name": case.algorithm}
    rewards = None
    if case.algorithm == "grpo":
        algorithm |= {"num_generations": 2 if smoke else 8,
                      "max_completion_length": 16 if smoke else 128}  # fmt: skip
        rewards = [{"function": "numeric_match", "params": {"column": "answer"}}]
    steps = max(5, round((5 if smoke else case.steps) * scale))
    body: dict[str, Any] = {
        "backend": backend,
        "algorithm": algorithm,
        "model": model,
        "data": data,
        "training": {"max_steps": steps, "batch_size": 2 if smoke else case.batch,
                     "learning_rate": 1e-5, "precision": "fp32" if smoke else "bf16",
                     "save_steps": 10_000, "logging_steps": 1},
        "output": {"save_final": False},
    }  # fmt: skip
    if rewards:
        body["rewards"] = rewards
    return body


def run_one(python: str, backend: str, case: Case, work: Path, smoke: bool, scale: float) -> dict:
    """Measure one case on one backend in `python`: its figures, or why it was not measured."""
    path = work / f"{case.name}-{backend}.yaml"
    path.write_text(yaml.safe_dump(recipe(case, backend, smoke, scale)), encoding="utf-8")
    started = time.perf_counter()
    done = subprocess.run([python, str(CHILD), backend, str(path), str(work / f"run-{path.stem}")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - started
    (work / f"{path.stem}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            return {**json.loads(line[6:]), "wall_s": wall}
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()] or ["no output"]
    return {"not_measured": f"exit {done.returncode}: {lines[-1].strip()[-300:]}", "wall_s": wall}


def cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(results: dict[str, dict[str, dict]]) -> str:
    """The markdown table: one row per case and backend, the same shape docs/benchmarks.md shows."""
    header = (
        "| case | backend | load s | s/step | steps/s | tokens/s | peak GiB | generation share |"
    )
    rows = [header, "|---|---|---|---|---|---|---|---|"]
    for case in CASES:
        for backend in BACKENDS:
            r = results.get(case.name, {}).get(backend)
            if r is None:
                continue
            if "not_measured" in r:
                rows.append(f"| {case.title} | {backend} | not measured: {r['not_measured']} |||||")
                continue
            share = None if r["generation_share"] is None else 100 * r["generation_share"]
            rows.append(
                f"| {case.title} | {backend} | {cell(r['load_s'], '.1f')} | "
                f"{cell(r['step_s'], '.3f')} | {cell(r['steps_per_s'], '.2f')} | "
                f"{cell(r['tokens_per_s'], ',.0f')} | {cell(r['peak_gib'], '.2f')} | "
                f"{cell(share, '.0f')}{'%' if share is not None else ''} |"
            )
    return "\n".join(rows) + "\n"


def verdict(results: dict[str, dict[str, dict]]) -> str:
    """The LoRA SFT targets, met or not, or why they cannot be judged."""
    trl, unsloth = (results.get("lora-sft", {}).get(b, {}) for b in BACKENDS)
    needed = ("tokens_per_s", "peak_gib")
    if any(r.get(key) is None for r in (trl, unsloth) for key in needed):
        return "unsloth/trl on LoRA SFT: not measured (a run failed, or no CUDA)"
    speed = unsloth["tokens_per_s"] / trl["tokens_per_s"]
    memory = unsloth["peak_gib"] / trl["peak_gib"]
    met = speed >= TARGET_SPEEDUP and memory <= TARGET_MEMORY
    return (
        f"unsloth/trl on LoRA SFT: {speed:.2f}x tokens/s (target >= {TARGET_SPEEDUP}), "
        f"{memory:.2f}x peak memory (target <= {TARGET_MEMORY}): {'met' if met else 'NOT met'}"
    )


def save(work: Path, results: dict, recipes: list[dict], smoke: bool) -> None:
    """gpu-results.json and gpu-results.md as they stand (rewritten after every run)."""
    summary = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "smoke": smoke,
               "cases": results, "verdict": verdict(results), "recipes": recipes}  # fmt: skip
    (work / "gpu-results.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    lines = [f"| {r['recipe']} | {r['backend']} | {r['status']} |" for r in recipes]
    recipe_table = "\n| tiny recipe | backend | result |\n|---|---|---|\n" + "\n".join(lines) + "\n"
    body = table(results) + "\n" + verdict(results) + "\n" + (recipe_table if recipes else "")
    if smoke:
        body = "--smoke: all cases on the tiny model, fp32; the figures compare nothing.\n\n" + body
    (work / "gpu-results.md").write_text(body, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trl-python", default=sys.executable)
    parser.add_argument("--unsloth-python", default=sys.executable)
    parser.add_argument("--work", type=Path, default=Path(".cache/gpu-check/bench"))
    parser.add_argument("--smoke", action="store_true", help="tiny model, fp32, any device")
    parser.add_argument("--no-recipes", action="store_true", help="skip the tiny recipes part")
    parser.add_argument("--recipes", nargs="*", default=None, help="only these tiny recipes")
    parser.add_argument("--only", nargs="*", choices=[c.name for c in CASES], default=None)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every step count")
    args = parser.parse_args()
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    pythons = {"trl": args.trl_python, "unsloth": args.unsloth_python}
    cases = [c for c in CASES if args.only is None or c.name in args.only]
    gpu_models.write_data(work, words=60 if args.smoke else 900)
    missing: dict[str, str] = {}  # shape -> why its model could not be made
    for shape in {"tiny"} if args.smoke else {c.shape for c in cases}:
        folder = work / f"model-{shape}"
        if not (folder / "config.json").is_file():
            dims = gpu_models.TINY_SHAPE if args.smoke else gpu_models.QWEN25_SHAPES[shape]
            try:
                gpu_models.make_model(folder, dims, "float32" if args.smoke else "bfloat16")
            except Exception as error:  # a model that cannot be made fails its rows only
                missing[shape] = f"making the {shape} model failed: {error!r}"[:300]
    results: dict[str, dict[str, dict]] = {}
    for case in cases:
        for backend in BACKENDS:
            why = missing.get("tiny" if args.smoke else case.shape)
            if why:
                r = {"not_measured": why, "wall_s": 0.0}
            else:
                r = run_one(pythons[backend], backend, case, work, args.smoke, args.steps_scale)
            results.setdefault(case.name, {})[backend] = r
            save(work, results, [], args.smoke)
            print(f"{case.title} / {backend}: {r.get('not_measured') or 'measured'} "
                  f"({r['wall_s']:.0f} s)", flush=True)  # fmt: skip
    print(table(results) + verdict(results))
    recipes = [] if args.no_recipes else gpu_smoke.run_recipes(pythons, work, args.recipes)
    save(work, results, recipes, args.smoke)
    print(f"wrote {work / 'gpu-results.json'} and {work / 'gpu-results.md'}")
    # QLoRA needs CUDA: on a --smoke run without it, its "not measured" row is the expected one.
    excused = {"qlora-sft"} if args.smoke else set()
    measured = all("not_measured" not in r for n, c in results.items() if n not in excused
                   for r in c.values())  # fmt: skip
    return 0 if measured and all(r["status"] == "ok" for r in recipes) else 1


if __name__ == "__main__":
    sys.exit(main())
