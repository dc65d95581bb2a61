"""Which sources a local image was built from: a digest of what its Dockerfile installs, recorded
as a label by `aligntune images build` and compared by `plan` and `run`. Image tags are shared by
everyone using the engine, so a tag rebuilt from another checkout, or before the last edit, is
named instead of silently running other code.

Nothing here talks to docker: the labels come from the engine probe `plan` and `run` already make.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from aligntune.core.backends import get_backend
from aligntune.core.plan import Plan

SOURCE_LABEL = "org.aligntune.source-sha256"
CHECKOUT_PARTS = ("images", "packages")
"""The folders that make a folder a source checkout of aligntune."""


def is_checkout(folder: Path) -> bool:
    """Whether `folder` is a source checkout of aligntune (images/ and packages/ in it)."""
    return all((folder / part).is_dir() for part in CHECKOUT_PARTS)


def is_build_debris(name: str) -> bool:
    """Files a build leaves in a package folder, which no image installs."""
    return name == "__pycache__" or name.endswith((".pyc", ".egg-info"))


def installed_packages(image: str) -> list[str]:
    """The package folders (from the checkout's root) that IMAGE's Dockerfile installs."""
    return ["packages/aligntune-core", "packages/runner-common", f"packages/{image}"]


def source_sha256(root: Path, image: str) -> str:
    """sha256 over the files of `installed_packages(image)` and IMAGE's Dockerfile under `root`:
    each file's path and bytes, in path order."""
    digest = hashlib.sha256()
    files = [root / "images" / image / "Dockerfile"]
    for package in installed_packages(image):
        for folder, names, found in os.walk(root / package):
            names[:] = sorted(n for n in names if not is_build_debris(n))
            files += [Path(folder) / n for n in sorted(found) if not is_build_debris(n)]
    for path in files:
        digest.update(f"{path.relative_to(root).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def launcher_checkout() -> Path | None:
    """The checkout this aligntune runs from (an editable install), else None (a wheel)."""
    return next((p for p in Path(__file__).resolve().parents if is_checkout(p)), None)


def stale_image_warning(plan: Plan, labels: Mapping[str, Mapping[str, str]]) -> str | None:
    """A warning when the plan's local build was not built from this checkout's sources (`labels`:
    tag -> labels, as the engine reports them); None for a released image or a wheel install."""
    root, tag = launcher_checkout(), plan.image
    if root is None or tag is None or plan.image_source != "local build" or tag not in labels:
        return None
    backend = get_backend(plan.backend)
    recorded = labels[tag].get(SOURCE_LABEL, "unknown")  # unknown: not built by aligntune
    if recorded == source_sha256(root, backend.image_name):
        return None
    if recorded == "unknown":
        built = f"image {tag} does not record which sources it was built from"
    else:
        built = f"image {tag} was built from other sources than {root}"
    return (
        f"{built}; the runner in it may not be this checkout's: rebuild it: "
        f"{backend.build_command(plan.device)}"
    )
