"""bench/backends_gpu.py runs as written: its --smoke mode takes the GPU benchmark's whole code
path (model, data, both backends' runners in their own interpreters, the figures) on CPU, so a
borrowed GPU is never spent finding a bug in the script."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from unsloth_helpers import REPO, TRL_PYTHON, UNSLOTH_PYTHON, needs_unsloth_venv


@pytest.mark.training
@needs_unsloth_venv
def test_gpu_benchmark_smoke_measures_both_backends(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(TRL_PYTHON),
            str(REPO / "bench" / "backends_gpu.py"),
            "--smoke",
            "--steps",
            "5",
            "--grpo-steps",
            "4",
            "--trl-python",
            str(TRL_PYTHON),
            "--unsloth-python",
            str(UNSLOTH_PYTHON),
            "--work",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(done.stdout, done.stderr[-3000:])
    assert done.returncode == 0
    for kind in ("sft", "grpo"):
        section = done.stdout.split(f"{kind} (LoRA", 1)[1].split("ratios:", 1)[0]
        for backend in ("trl", "unsloth"):
            row = re.search(rf"^\s+{backend}\s+(\d+) tokens/s", section, re.MULTILINE)
            assert row and int(row.group(1)) > 0, f"{kind}/{backend} measured nothing"
    assert "peak memory not measured (no CUDA)" in done.stdout
    assert "unsloth/trl" not in done.stdout, "a smoke run must not print a speed-up"
