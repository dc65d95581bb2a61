"""The unsloth cuda image, built here and in CI, checked on a host without a GPU: its stack is the
CUDA build and consistent, its preflight refuses to start without a GPU (exit 3, with the fix),
and its selftest trains in Unsloth's CPU mode when the user opts out of the preflight."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from image_helpers import docker

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]


def test_labels_and_compiler_for_triton(unsloth_cuda_image: str) -> None:
    (info,) = json.loads(docker("image", "inspect", unsloth_cuda_image).stdout)
    labels = info["Config"]["Labels"]
    lock = REPO / "images" / "unsloth-runner" / "requirements-cuda.lock"
    assert labels["org.aligntune.backend"] == "unsloth"
    assert labels["org.aligntune.device"] == "cuda"
    assert labels["org.aligntune.lock-sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    assert "ALIGNTUNE_IMAGE_DEVICE=cuda" in info["Config"]["Env"]
    gcc = docker("run", "--rm", "--entrypoint", "sh", unsloth_cuda_image, "-c", "command -v gcc")
    assert gcc.returncode == 0, "triton compiles its kernels with gcc at first use"


def test_stack_is_the_locked_cuda_build_and_pip_check_is_clean(unsloth_cuda_image: str) -> None:
    check = docker("run", "--rm", "--entrypoint", "pip", unsloth_cuda_image, "check")
    assert check.returncode == 0 and "No broken requirements found." in check.stdout
    probe = (
        "import json, torch, triton, xformers, bitsandbytes; "
        "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, "
        "'triton': triton.__version__, 'xformers': xformers.__version__}))"
    )
    done = docker("run", "--rm", "--entrypoint", "python", unsloth_cuda_image, "-c", probe)
    assert done.returncode == 0
    versions = json.loads(done.stdout.strip().splitlines()[-1])
    lock = dict(
        line.split("==")
        for line in (REPO / "images/unsloth-runner/requirements-cuda.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert versions["torch"].split("+")[0] == lock["torch"]
    assert "+cpu" not in versions["torch"] and versions["cuda"], versions
    assert (versions["triton"], versions["xformers"]) == (lock["triton"], lock["xformers"])


def test_without_a_gpu_the_preflight_stops_with_the_fix(unsloth_cuda_image: str) -> None:
    done = docker("run", "--rm", unsloth_cuda_image, "selftest")
    assert done.returncode == 3
    assert "error: no NVIDIA GPU is visible" in done.stderr
    assert "docker run --gpus all" in done.stderr
    assert "ALIGNTUNE_UNSLOTH_ALLOW_CPU=1" in done.stderr
    assert "selftest: ok" not in done.stdout


def test_selftest_trains_in_cpu_mode_when_the_user_opts_out(unsloth_cuda_image: str) -> None:
    done = docker(
        "run",
        "--rm",
        "--init",
        "--user",
        "12345:12345",
        "-e",
        "ALIGNTUNE_UNSLOTH_ALLOW_CPU=1",
        unsloth_cuda_image,
        "selftest",
    )
    assert done.returncode == 0
    assert "aligntune unsloth runner selftest: ok (device cpu" in done.stdout
    assert "CPU mode" in done.stdout + done.stderr
