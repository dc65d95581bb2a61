"""The run's manifest: what ran it (packages, image, host) and on exactly which data."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from aligntune.core.paths import local_path
from aligntune.core.recipe import Recipe
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


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_digest(path: Path) -> str:
    """What a local input holds, for telling a moved input from a changed one: a file's sha256;
    for a folder (a model), the sha256 of each file's relative name and size (its weights are
    not read again)."""
    if path.is_file():
        return f"sha256:{file_sha256(path)}"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}\0{file.stat().st_size}\n".encode())
    return f"files:{digest.hexdigest()}"


def input_digests(recipe: Recipe) -> dict[str, str]:
    """Each local input's field (`data.train.path`) -> `content_digest` of what it names."""
    return {field: content_digest(path) for field, path in recipe.local_references().items()}


def _source_fingerprint(field: str, source: DataSource, base_dir: Path) -> dict[str, Any]:
    path = local_path(source.path, base_dir)
    if path is not None:
        return {"field": field, "path": str(path), "sha256": file_sha256(path)}
    return {
        "field": field,
        "hub_id": source.path,
        "split": source.split,
        "subset": source.subset,
        "revision": source.revision,
    }


def data_fingerprint(recipe: Recipe) -> list[dict[str, Any]]:
    """One entry per data source: sha256 for local files, id and revision for hub datasets."""
    sources = recipe.data.train_sources()
    if recipe.data.eval is not None:
        sources.append(("data.eval", recipe.data.eval))
    reward_training = getattr(recipe.algorithm, "train_reward_model", None)
    if reward_training is not None:
        sources.append(("algorithm.train_reward_model.data", reward_training.data))
    return [_source_fingerprint(f, s, recipe.base_dir) for f, s in sources]


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


def recipe_fingerprint(resolved: dict[str, Any], backend: str) -> str:
    """sha256 of what decides the run's result: the resolved recipe (minus output) and backend."""
    relevant = {k: v for k, v in resolved.items() if k != "output"}
    text = json.dumps({"recipe": relevant, "backend": backend}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_manifest(
    recipe: Recipe, resolved: dict[str, Any], backend: str, runner_packages: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The manifest written when a run starts (`runner_packages`: the backend's distributions)."""
    return {
        "created": time.time(),
        "runner": backend,
        "backend": backend,
        "recipe_sha256": recipe_fingerprint(resolved, backend),
        "packages": package_versions(runner_packages),
        "image_id": os.environ.get("ALIGNTUNE_IMAGE_ID"),
        "data": data_fingerprint(recipe),
        "inputs": input_digests(recipe),
        "host": host_info(),
        "resumes": [],
    }
