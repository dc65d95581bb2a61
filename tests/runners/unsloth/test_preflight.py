"""The unsloth image's entrypoint preflight: no GPU, old driver, old GPU -> exit 3 with the fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from unsloth_helpers import RUNNER_SRC, UNSLOTH_PYTHON, needs_unsloth_venv

from aligntune.runners.unsloth import preflight
from aligntune.runners.unsloth.preflight import ProbedGpu, parse_nvidia_smi, problems

A100 = ProbedGpu("NVIDIA A100-SXM4-80GB", "580.95.05", "8.0")


def test_parses_nvidia_smi_csv() -> None:
    """One GPU per line: name, driver, compute capability."""
    out = "NVIDIA A100-SXM4-80GB, 580.95.05, 8.0\nNVIDIA T4, 580.95.05, 7.5\n\n"
    assert parse_nvidia_smi(out) == [A100, ProbedGpu("NVIDIA T4", "580.95.05", "7.5")]


def test_a_recent_gpu_passes() -> None:
    """A recent driver and an Ampere GPU raise nothing."""
    assert problems([A100], None) == []


def test_no_gpu_names_the_flags_and_the_opt_out() -> None:
    """No GPU: say how to give the container one, or how to use the CPU mode."""
    [message] = problems([], "nvidia-smi is not in the container (it was started without GPUs)")
    assert "no NVIDIA GPU is visible" in message and "--gpus all" in message
    assert preflight.ALLOW_CPU_ENV in message and "backend trl" in message


def test_old_driver_and_old_gpu_are_reported_together() -> None:
    """An old driver and a Pascal GPU are two problems, each with its fix."""
    found = problems([ProbedGpu("Tesla P100-PCIE-16GB", "535.104.05", "6.0")], None)
    assert len(found) == 2
    assert "driver 535.104.05 is too old" in found[0] and "580.65" in found[0]
    assert "compute capability 6.0" in found[1] and "7.5" in found[1]


def test_opt_out_skips_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """ALIGNTUNE_UNSLOTH_ALLOW_CPU=1 means: run without looking for a GPU."""
    monkeypatch.setattr(preflight, "probe_gpus", lambda: pytest.fail("probed"))
    assert preflight.check({preflight.ALLOW_CPU_ENV: "1"}) == []


def test_entrypoint_exits_3_without_gpu_in_a_second() -> None:
    """On this GPU-less host the entrypoint refuses before importing torch or unsloth."""
    env = {k: v for k, v in os.environ.items() if k != preflight.ALLOW_CPU_ENV}
    env["PATH"] = "/usr/bin:/bin"  # no nvidia-smi
    # The runner from this checkout, over whatever core the test process imports.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(RUNNER_SRC), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "aligntune.runners.unsloth.entrypoint", "selftest"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "error: no NVIDIA GPU is visible" in done.stderr
    assert f"hint: set {preflight.ALLOW_CPU_ENV}=1" in done.stderr


@pytest.mark.training
@needs_unsloth_venv
def test_selftest_in_cpu_mode_through_the_entrypoint() -> None:
    """With the opt-out, the image's `selftest` trains a tiny model made on the spot."""
    done = subprocess.run(
        [str(UNSLOTH_PYTHON), "-m", "aligntune.runners.unsloth.entrypoint", "selftest"],
        capture_output=True,
        text=True,
        env={**os.environ, preflight.ALLOW_CPU_ENV: "1", "HF_HUB_OFFLINE": "1"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "aligntune unsloth runner selftest: ok (device cpu" in done.stdout


def test_the_cpu_image_skips_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cpu image (ALIGNTUNE_IMAGE_DEVICE=cpu) exists to run the CPU mode: no GPU probe."""
    monkeypatch.setattr(preflight, "probe_gpus", lambda: pytest.fail("probed"))
    assert preflight.check({preflight.IMAGE_DEVICE_ENV: "cpu"}) == []
    monkeypatch.setattr(preflight, "probe_gpus", lambda: ([], "nvidia-smi is not in the container"))
    assert preflight.check({preflight.IMAGE_DEVICE_ENV: "cuda"}) != []
