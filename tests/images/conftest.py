"""Image tests need a real Docker engine: it is checked once; without one they skip, loudly.

The trl and unsloth cpu images, and the trl and unsloth cuda images, are built (or reused) once per
session with `aligntune images build`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from aligntune.core.backends import image_tag

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny"
TRL_CPU_IMAGE = image_tag("trl", "cpu")
TRL_CUDA_IMAGE = image_tag("trl", "cuda")
UNSLOTH_CPU_IMAGE = image_tag("unsloth", "cpu")
UNSLOTH_CUDA_IMAGE = image_tag("unsloth", "cuda")
ALIGNTUNE = [sys.executable, "-m", "aligntune.cli.main"]


@cache
def engine_problem() -> str | None:
    """Why no docker engine can be used here (None when `docker info` answers)."""
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the docker CLI cannot be run ({exc})"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no docker engine answers ({last[:150]})"
    return None


def pytest_report_header(config: pytest.Config) -> str:
    """Say up front whether the docker tests will run."""
    problem = engine_problem()
    if problem is None:
        return "docker engine: reachable; image tests run for real"
    return (
        f"docker engine: {problem}; EVERY `docker` TEST IS SKIPPED (bash scripts/install-docker.sh)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip docker-marked tests, with the reason, when there is no engine."""
    problem = engine_problem()
    if problem is None:
        return
    skip = pytest.mark.skip(reason=f"SKIPPED, NOT PASSED: {problem}")
    for item in items:
        if item.get_closest_marker("docker"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """Repeat the reason at the end, where nobody can miss it."""
    problem = engine_problem()
    if problem is not None:
        terminalreporter.write_sep("!", f"docker tests SKIPPED: {problem}", yellow=True, bold=True)


def _built(tag: str, image: str, device: str = "cpu") -> str:
    """`tag`, built with `aligntune images build IMAGE --device DEVICE` if the engine lacks it."""
    present = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    if present.returncode != 0:
        build = subprocess.run([*ALIGNTUNE, "images", "build", image, "--device", device], cwd=REPO)
        assert build.returncode == 0, f"aligntune images build {image} --device {device} failed"
    return tag


@pytest.fixture(scope="session")
def trl_cpu_image() -> str:
    """The trl cpu image, built once if the engine does not have it."""
    return _built(TRL_CPU_IMAGE, "trl-runner")


@pytest.fixture(scope="session")
def trl_cuda_image() -> str:
    """The trl cuda image (CUDA torch, bitsandbytes), built once if the engine lacks it."""
    return _built(TRL_CUDA_IMAGE, "trl-runner", "cuda")


@pytest.fixture(scope="session")
def unsloth_cpu_image() -> str:
    """The unsloth cpu image (Unsloth's CPU mode), built once if the engine does not have it."""
    return _built(UNSLOTH_CPU_IMAGE, "unsloth-runner")


@pytest.fixture(scope="session")
def unsloth_cuda_image() -> str:
    """The unsloth cuda image (CUDA torch, triton, xformers), built once if the engine lacks it."""
    return _built(UNSLOTH_CUDA_IMAGE, "unsloth-runner", "cuda")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ALIGNTUNE_DEBUG", "HF_TOKEN")}
    return {**env, **extra}


@pytest.fixture
def aligntune(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the aligntune CLI as a user would; its output is shown only when a test fails."""

    def run(*args: str, env: dict[str, str] | None = None, **kwargs: object):
        result = subprocess.run(
            [*ALIGNTUNE, *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=env or _env(HF_HOME=str(tmp_path / "hf")),
            cwd=tmp_path,
            **kwargs,  # type: ignore[arg-type]
        )
        print(f"$ aligntune {' '.join(args)}\n{result.stdout}\n{result.stderr}")
        return result

    return run
