"""What can be checked of the image files without building them (tests/images builds the cpu
variant; the cuda variant is built by the GPU workflow)."""

from __future__ import annotations

import re
import subprocess

from unsloth_helpers import REPO, UNSLOTH_PYTHON, needs_unsloth_venv

IMAGE = REPO / "images" / "unsloth-runner"


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2).split("+")[0]
    return pins


def test_dockerfile_habits() -> None:
    """Exec-form preflight entrypoint, labels, one locked no-deps pass, pip check, gcc for cuda."""
    text = (IMAGE / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "aligntune.runners.unsloth.entrypoint"]' in text
    for label in ('backend="unsloth"', 'device="${DEVICE}"', "version=", "lock-sha256="):
        assert f"org.aligntune.{label}" in text
    assert "--no-index --find-links /wheels --no-deps" in text and "aligntune-pip-check" in text
    assert 'if [ "$DEVICE" = cuda ]' in text and "gcc" in text and "python3-dev" in text
    assert "ALIGNTUNE_IMAGE_DEVICE=${DEVICE}" in text
    assert "ARG BASE_IMAGE" in text and "FROM ${BASE_IMAGE}" in text


def test_cpu_lock_is_the_cuda_lock_without_cuda() -> None:
    """Every cpu pin has the cuda lock's version; the cuda lock adds only CUDA packages."""
    cpu = _pins((IMAGE / "requirements-cpu.lock").read_text())
    cuda = _pins((IMAGE / "requirements-cuda.lock").read_text())
    assert {k: (v, cuda.get(k)) for k, v in cpu.items() if cuda.get(k) != v} == {}
    cuda_only = {k for k in set(cuda) - set(cpu) if not k.startswith(("nvidia-", "cuda-"))}
    assert cuda_only == {"triton", "xformers", "torchvision"}


def test_lock_pins_the_runner_stack() -> None:
    """The lock holds the runner's exact pins and the CUDA kernels Unsloth uses."""
    pins = _pins((IMAGE / "requirements-cuda.lock").read_text())
    expected = {"torch": "2.13.0", "trl": "1.12.0", "transformers": "5.17.0",
                "unsloth": "2026.10.9", "unsloth-zoo": "2026.10.9"}  # fmt: skip
    assert {name: pins.get(name) for name in expected} == expected
    assert {"triton", "bitsandbytes", "xformers"} <= set(pins)


@needs_unsloth_venv
def test_lock_agrees_with_the_tested_cpu_venv() -> None:
    """Every package of the CPU-tested .venv-unsloth has the lock's version (CPU mode = image)."""
    frozen = subprocess.run(
        [str(UNSLOTH_PYTHON), "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout
    venv = {k: v for k, v in _pins(frozen).items() if not k.startswith("aligntune")}
    lock = _pins((IMAGE / "requirements-cuda.lock").read_text())
    differ = {k: (v, lock.get(k)) for k, v in venv.items() if lock.get(k) != v}
    assert differ == {}
