"""`aligntune images build` sends docker only what the image's Dockerfile copies: with the cuda
wheelhouses (gigabytes) beside the cpu ones, sending the whole checkout made every rebuild slow."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from aligntune.cli.images import context_paths, write_context

REPO = Path(__file__).resolve().parents[2]


def fake_checkout(root: Path) -> None:
    """The files an image build reads, plus what it must leave out."""
    for relative in (
        "images/unsloth-runner/Dockerfile",
        "images/trl-runner/Dockerfile",
        "packages/aligntune-core/src/aligntune/core/recipe.py",
        "packages/aligntune-core/src/aligntune/core/__pycache__/recipe.cpython-311.pyc",
        "packages/aligntune-core/src/aligntune_core.egg-info/PKG-INFO",
        "packages/runner-common/pyproject.toml",
        "packages/unsloth-runner/pyproject.toml",
        "packages/trl-runner/pyproject.toml",
        "packages/aligntune-cli/pyproject.toml",
        ".wheelhouse/unsloth-runner-cuda/torch-2.13.0-cp311.whl",
        ".wheelhouse/unsloth-runner-cpu/torch-2.13.0+cpu-cp311.whl",
        ".wheelhouse/trl-runner-cuda/torch-2.13.0-cp311.whl",
        "runs/tiny-sft/status.json",
    ):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(relative)


def test_context_holds_only_this_image_and_device(tmp_path: Path) -> None:
    fake_checkout(tmp_path)
    sink = io.BytesIO()
    write_context(tmp_path, context_paths("unsloth-runner", "cuda"), sink)
    with tarfile.open(fileobj=io.BytesIO(sink.getvalue())) as tar:
        files = {m.name for m in tar.getmembers() if m.isfile()}
        owners = {(m.uid, m.gid) for m in tar.getmembers()}
    assert files == {
        "images/unsloth-runner/Dockerfile",
        "packages/aligntune-core/src/aligntune/core/recipe.py",
        "packages/runner-common/pyproject.toml",
        "packages/unsloth-runner/pyproject.toml",
        ".wheelhouse/unsloth-runner-cuda/torch-2.13.0-cp311.whl",
    }
    assert owners == {(0, 0)}


@pytest.mark.parametrize("image", ["trl-runner", "unsloth-runner"])
def test_context_covers_every_copy_in_the_dockerfile(image: str) -> None:
    dockerfile = (REPO / "images" / image / "Dockerfile").read_text()
    sources = re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.MULTILINE)
    for device in ("cpu", "cuda"):
        paths = context_paths(image, device)
        for source in sources:
            source = source.replace("${DEVICE}", device).rstrip("/")
            assert any(source == p or source.startswith(p + "/") for p in paths), source
