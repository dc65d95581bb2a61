"""The run's manifest: what ran it (packages, image, host) and on exactly which data."""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from aligntune.core.paths import local_path
from aligntune.core.recipe import Recipe
from aligntune.core.resume_rules import file_sha256, recipe_fingerprint
from aligntune.core.sections import DataSource

STACK_PACKAGES = (
    "aligntune-runner-common",
    "torch",
    "transformers",
    "trl",
    "datasets",
    "peft",
    "accelerate",
)


def package_versions(runner_packages: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Installed versions of the packages that decide what a run computes."""
    found: dict[str, str | None] = {}
    for name in ("aligntune-core", *runner_packages, *STACK_PACKAGES):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _source_fingerprint(
    field: str, source: DataSource, base_dir: Path, inputs: Mapping[str, str]
) -> dict[str, Any]:
    path = local_path(source.path, base_dir)
    if path is not None:
        digest = inputs.get(f"{field}.path", "")
        sha256 = digest.removeprefix("sha256:") if digest.startswith("sha256:") else None
        return {"field": field, "path": str(path), "sha256": sha256 or file_sha256(path)}
    return {
        "field": field,
        "hub_id": source.path,
        "split": source.split,
        "subset": source.subset,
        "revision": source.revision,
    }


def data_fingerprint(recipe: Recipe, inputs: Mapping[str, str]) -> list[dict[str, Any]]:
    """One entry per data source: sha256 for local files (from `inputs`, `input_digests`, where it
    has them: each file is read once), id and revision for hub datasets."""
    sources = recipe.data.train_sources()
    if recipe.data.eval is not None:
        sources.append(("data.eval", recipe.data.eval))
    reward_training = getattr(recipe.algorithm, "train_reward_model", None)
    if reward_training is not None:
        sources.append(("algorithm.train_reward_model.data", reward_training.data))
    return [_source_fingerprint(f, s, recipe.base_dir, inputs) for f, s in sources]


def host_info() -> dict[str, Any]:
    """The machine the run is on (no secrets: names and counts only)."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "gpus": gpus,
    }


def build_manifest(
    recipe: Recipe,
    resolved: dict[str, Any],
    backend: str,
    inputs: Mapping[str, str],
    runner_packages: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The manifest written when a run starts (`inputs`: `input_digests` of the recipe;
    `runner_packages`: the backend's distributions)."""
    return {
        "created": time.time(),
        "runner": backend,
        "backend": backend,
        "recipe_sha256": recipe_fingerprint(resolved, backend),
        "packages": package_versions(runner_packages),
        "image_id": os.environ.get("ALIGNTUNE_IMAGE_ID"),
        "data": data_fingerprint(recipe, inputs),
        "inputs": dict(inputs),
        "host": host_info(),
        "resumes": [],
    }
