"""The unsloth cpu image for real: labels, `pip check`, its selftest, and `aligntune run --backend
unsloth` training in it (Unsloth's CPU mode; the cuda variant is built by the GPU workflow)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from image_helpers import docker, tiny_sft_copy

from aligntune.core.version import VERSION

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
LEFT_OUT = ("triton", "xformers", "torchvision")
"""unsloth's CUDA-only requirements that the cpu image leaves out (images/unsloth-runner/)."""


def test_labels_entrypoint_and_no_compiler(unsloth_cpu_image: str) -> None:
    """Labels as the trl image's, the preflight entrypoint, the cpu marker, and no gcc."""
    (info,) = json.loads(docker("image", "inspect", unsloth_cpu_image).stdout)
    config = info["Config"]
    lock = REPO / "images" / "unsloth-runner" / "requirements-cpu.lock"
    assert config["Labels"]["org.aligntune.backend"] == "unsloth"
    assert config["Labels"]["org.aligntune.device"] == "cpu"
    assert config["Labels"]["org.aligntune.version"] == VERSION
    assert (
        config["Labels"]["org.aligntune.lock-sha256"]
        == hashlib.sha256(lock.read_bytes()).hexdigest()
    )
    assert config["Entrypoint"] == ["python", "-m", "aligntune.runners.unsloth.entrypoint"]
    assert "ALIGNTUNE_IMAGE_DEVICE=cpu" in config["Env"]
    no_gcc = docker("run", "--rm", "--entrypoint", "sh", unsloth_cpu_image, "-c", "command -v gcc")
    assert no_gcc.returncode != 0, "the cpu image should need no C compiler"


def test_pip_check_misses_only_the_cuda_only_packages(unsloth_cpu_image: str) -> None:
    """Plain `pip check` names exactly the three left-out packages; the image's check passes."""
    plain = docker("run", "--rm", "--entrypoint", "pip", unsloth_cpu_image, "check")
    missing = set(re.findall(r"requires ([\w.-]+), which is not installed", plain.stdout))
    problems = [line for line in plain.stdout.splitlines() if "which is not installed" not in line]
    assert missing == set(LEFT_OUT) and problems == []
    allowed = docker(
        "run", "--rm", "--entrypoint", "aligntune-pip-check", unsloth_cpu_image, *LEFT_OUT
    )
    assert allowed.returncode == 0
    assert "pip check: ok, except the packages left out on purpose" in allowed.stdout


def test_selftest_trains_in_cpu_mode_as_a_non_root_uid(unsloth_cpu_image: str) -> None:
    """The image's purpose: the selftest passes the preflight and trains on CPU, no GPU flags."""
    done = docker("run", "--rm", "--init", "--user", "12345:12345", unsloth_cpu_image, "selftest")
    assert done.returncode == 0
    assert "aligntune unsloth runner selftest: ok (device cpu" in done.stdout
    assert "CPU mode" in done.stdout + done.stderr


def test_run_backend_unsloth_trains_in_the_cpu_image(
    unsloth_cpu_image: str,
    tmp_path: Path,
    aligntune: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    """`aligntune run --backend unsloth` plans unsloth/cpu and completes in the cpu image."""
    run_dir = tmp_path / "run"
    # A few steps: this checks the path through the image, not learning.
    recipe = tiny_sft_copy(tmp_path, "sft.yaml", max_steps=4, save_steps=2)
    result = aligntune("run", str(recipe), "--backend", "unsloth", "--output", str(run_dir), "-q")
    assert result.returncode == 0, result.stderr
    for name in (
        "plan.json",
        "recipe.resolved.yaml",
        "manifest.json",
        "events.jsonl",
        "status.json",
        "trainer_settings.json",
        "container.log",
    ):
        assert (run_dir / name).is_file(), f"{name} missing in {run_dir}"
    assert any((run_dir / "final").iterdir())
    not_owned = [str(p) for p in run_dir.rglob("*") if p.stat().st_uid != os.getuid()]
    assert not_owned == []
    plan = json.loads((run_dir / "plan.json").read_text())
    assert (plan["backend"], plan["device"], plan["image"]) == ("unsloth", "cpu", unsloth_cpu_image)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["step"] == 4
    assert "unsloth" in json.loads((run_dir / "trainer_settings.json").read_text())
    assert json.loads((run_dir / "manifest.json").read_text())["packages"]["unsloth"] == "2026.10.9"
