"""The GPU check's smoke part: every shipped tiny recipe once through each runner that the
registry says runs its algorithm, each in its own process, as `python -m aligntune.runners.X run`.
A pass proves the code paths on the device (CUDA on a GPU host), not speed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "recipes" / "tiny"


def pairs(names: list[str] | None = None) -> list[tuple[Path, str]]:
    """(recipe, backend) for every tiny recipe (or those `names`) and each backend it lists."""
    from aligntune.core.algorithms import get_algorithm

    found = []
    for recipe in sorted(TINY.glob("*.yaml")):
        if names is not None and recipe.stem not in names:
            continue
        name = yaml.safe_load(recipe.read_text(encoding="utf-8"))["algorithm"]["name"]
        found += [(recipe, backend) for backend in get_algorithm(name).backends]
    return found


def run_recipes(
    pythons: dict[str, str], work: Path, names: list[str] | None = None
) -> list[dict[str, Any]]:
    """One row per (recipe, backend): ok, or failed with the last line of its output."""
    rows = []
    for recipe, backend in pairs(names):
        out = work / "smoke" / f"{backend}-{recipe.stem}"
        log = work / f"smoke-{backend}-{recipe.stem}.log"
        with log.open("w") as handle:
            done = subprocess.run(
                [pythons[backend], "-m", f"aligntune.runners.{backend}", "run", str(recipe),
                 "--output", str(out), "--restart"],
                stdout=handle, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() or [""]
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        rows.append({"recipe": recipe.stem, "backend": backend, "status": status,
                     "last_line": lines[-1][-300:], "log": str(log)})  # fmt: skip
        print(f"  {recipe.stem:8s} {backend:8s} {status}: {lines[-1][-160:]}", flush=True)
    return rows
