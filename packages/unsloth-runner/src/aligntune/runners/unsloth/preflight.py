"""The image's start-up check: is there a GPU this CUDA build of Unsloth can use?

It runs before torch or unsloth is imported (it asks `nvidia-smi`, which the NVIDIA container
runtime mounts into GPU containers), so a missing GPU, an old driver or an old GPU fails in under
a second with the fix, instead of a CUDA error deep inside a triton kernel. The cpu image
(IMAGE_DEVICE_ENV=cpu) skips it, as does ALLOW_CPU_ENV=1: Unsloth then trains in its CPU mode
(slow, LoRA only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from aligntune.core.errors import BackendUnavailableError, ExitCode, error_lines

ALLOW_CPU_ENV = "ALIGNTUNE_UNSLOTH_ALLOW_CPU"
"""Set to 1 to run without a GPU (Unsloth's CPU mode)."""
IMAGE_DEVICE_ENV = "ALIGNTUNE_IMAGE_DEVICE"
"""Set by the image to its variant; the cpu image exists to run Unsloth's CPU mode."""
MIN_DRIVER = (580, 65)
"""The image's torch (PyPI's default build) and triton target CUDA 13, which needs 580.65+."""
MIN_COMPUTE_CAPABILITY = (7, 5)
"""CUDA 13 builds of torch ship kernels for Turing (sm_75) and newer only."""


@dataclass(frozen=True)
class ProbedGpu:
    """One GPU as nvidia-smi describes it."""

    name: str
    driver: str
    compute_capability: str


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.strip().split(".") if part.isdigit())


def parse_nvidia_smi(output: str) -> list[ProbedGpu]:
    """GPUs from `nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader`."""
    gpus = []
    for line in output.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3 and parts[0]:
            gpus.append(ProbedGpu(*parts))
    return gpus


def probe_gpus() -> tuple[list[ProbedGpu], str | None]:
    """The visible GPUs, and why none could be listed (no nvidia-smi, or its error)."""
    if shutil.which("nvidia-smi") is None:
        return [], "nvidia-smi is not in the container (it was started without GPUs)"
    query = ["nvidia-smi", "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi failed: {exc}"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return [], f"nvidia-smi failed: {detail[0] if detail else f'exit {done.returncode}'}"
    return parse_nvidia_smi(done.stdout), None


def problems(gpus: list[ProbedGpu], why_none: str | None) -> list[str]:
    """What stops this image from training on these GPUs, each with its fix; empty when fine."""
    if not gpus:
        return [
            f"no NVIDIA GPU is visible ({why_none or 'nvidia-smi lists none'}). Start the "
            "container with GPUs (docker run --gpus all, with the NVIDIA Container Toolkit "
            f"installed), use backend trl, or set {ALLOW_CPU_ENV}=1 to train in Unsloth's "
            "CPU mode (slow, LoRA only)"
        ]
    found = []
    driver = gpus[0].driver
    if _version(driver) < MIN_DRIVER:
        found.append(
            f"NVIDIA driver {driver} is too old: this image's CUDA 13 torch and triton need "
            f"{'.'.join(map(str, MIN_DRIVER))} or newer. Update the host's driver, or use "
            "backend trl"
        )
    need = ".".join(map(str, MIN_COMPUTE_CAPABILITY))
    for gpu in gpus:
        if _version(gpu.compute_capability) < MIN_COMPUTE_CAPABILITY:
            found.append(
                f"{gpu.name} (compute capability {gpu.compute_capability}) is too old: this "
                f"image needs {need} (Turing) or newer. Use backend trl on this GPU"
            )
    return found


def check(environ: Mapping[str, str] | None = None) -> list[str]:
    """Run the probe unless opted out or in the cpu image; the problems found (empty: go ahead)."""
    environ = os.environ if environ is None else environ
    if environ.get(ALLOW_CPU_ENV, "") in ("1", "true", "yes"):
        return []
    if environ.get(IMAGE_DEVICE_ENV) == "cpu":
        return []
    return problems(*probe_gpus())


def refuse(found: list[str]) -> int:
    """Print the problems `check` found, the opt-out as the hint; the exit code to stop with."""
    error = BackendUnavailableError(
        "\n".join(found), hint=f"set {ALLOW_CPU_ENV}=1 to skip this check (Unsloth's CPU mode)"
    )
    print("\n".join(error_lines(error)), file=sys.stderr)
    return error.exit_code


if __name__ == "__main__":
    # `python -m aligntune.runners.unsloth.preflight`: the check alone, for scripts and people.
    found = check()
    code = refuse(found) if found else ExitCode.OK
    print("preflight: ok" if not found else "preflight: failed")
    sys.exit(code)
