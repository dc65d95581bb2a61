"""Which image a docker run uses: the local build, or the released image pinned by digest.

A released aligntune knows its images by registry, repository, tag and digest: the release
workflow records them (`aligntune images publish`) in `released_images.json`, this package's
data, before the wheels are built. A development checkout records none: its images are built
locally (`aligntune images build`). Standard library only: `validate`, `plan` and `--version`
read this.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aligntune.core.backends import BackendSpec, Device
from aligntune.core.errors import UsageError
from aligntune.core.version import VERSION

RELEASED_IMAGES_FILE = Path(__file__).with_name("released_images.json")
"""The released images of this version; a development checkout's lists none."""
MIRROR_ENV = "ALIGNTUNE_REGISTRY"
"""Pull released images from this registry (host[:port][/path]) instead of the recorded one, e.g. a
mirror; the digest stays the same, so the bits do too."""
PullPolicy = Literal["missing", "never", "always"]
"""When `aligntune run` pulls the released image: when absent (default), never, or every run."""
PULL_POLICIES: tuple[PullPolicy, ...] = ("missing", "never", "always")


@dataclass(frozen=True)
class ReleasedImage:
    """One released runner image, pinned by digest."""

    registry: str
    """host[:port] it was pushed to (ALIGNTUNE_REGISTRY replaces it)."""
    repository: str
    tag: str
    digest: str
    """sha256:..., the manifest digest the registry answered to the push."""
    download_bytes: int | None = None
    """The compressed layers' total, from the registry's manifest; None when not recorded."""

    @property
    def reference(self) -> str:
        """What docker pulls and runs: registry/repository@digest (the tag is informative)."""
        return f"{self.registry}/{self.repository}@{self.digest}"

    def as_record(self) -> dict[str, object]:
        """The JSON record `released_images.json` keeps."""
        return {
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "download_bytes": self.download_bytes,
        }


def read_released(path: Path = RELEASED_IMAGES_FILE) -> list[ReleasedImage]:
    """Every image recorded in `path` (none when the file is missing)."""
    if not path.is_file():
        return []
    records = json.loads(path.read_text(encoding="utf-8")).get("images", [])
    return [ReleasedImage(**record) for record in records]


def record_released(image: ReleasedImage, path: Path = RELEASED_IMAGES_FILE) -> None:
    """Add or replace `image` (by repository and tag) in `path`, the release's package data."""
    kept = [
        other
        for other in read_released(path)
        if (other.repository, other.tag) != (image.repository, image.tag)
    ]
    records = [i.as_record() for i in sorted([*kept, image], key=lambda i: (i.repository, i.tag))]
    path.write_text(json.dumps({"images": records}, indent=2) + "\n", encoding="utf-8")


def released_image(
    spec: BackendSpec, device: str, path: Path = RELEASED_IMAGES_FILE
) -> ReleasedImage | None:
    """The released image of this aligntune version for a backend and device, with the mirror
    of ALIGNTUNE_REGISTRY applied; None in a development checkout (or for another version's)."""
    tag = spec.image_tag(device).rpartition(":")[2]
    for image in read_released(path):
        if (image.repository, image.tag) == (spec.image_repository, tag):
            mirror = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
            if "://" in mirror or any(c.isspace() for c in mirror):
                raise UsageError(
                    f"{MIRROR_ENV}={mirror}: a registry is named host[:port][/path], without a "
                    "scheme or spaces (docker pulls over https)",
                    hint=f"e.g. {MIRROR_ENV}={''.join(mirror.rpartition('://')[2].split())}",
                )
            if mirror:
                return ReleasedImage(
                    mirror, image.repository, image.tag, image.digest, image.download_bytes
                )
            return image
    return None


@dataclass(frozen=True)
class ImageChoice:
    """The image a docker run will use, and why."""

    reference: str
    source: Literal["local build", "release"]
    present: bool
    """In the docker engine already."""
    pull: bool
    """The run pulls it first."""
    why: str
    download_bytes: int | None = None
    """What the pull downloads, when recorded."""


def choose_image(
    spec: BackendSpec,
    device: Device,
    present: frozenset[str],
    pull: PullPolicy = "missing",
    released_file: Path = RELEASED_IMAGES_FILE,
) -> ImageChoice:
    """The local build when present (unless `--pull always`), else the released image (pulled
    when absent, unless `--pull never`); with neither, the local build that is missing.
    `present`: the image references the docker engine holds."""
    local = spec.image_tag(device)
    released = released_image(spec, device, released_file)
    if released is None:
        why = f"image: the local build; aligntune {VERSION} has no released images (a "
        why += "development checkout)"
        if pull == "always":
            why += "; --pull always has nothing to pull"
        return ImageChoice(local, "local build", local in present, False, why)
    if local in present and pull != "always":
        why = f"image: the local build {local} wins over the released {released.reference}"
        return ImageChoice(local, "local build", True, False, why)
    here = released.reference in present
    pulls = pull == "always" or (pull == "missing" and not here)
    why = f"image: the released image of this version, pinned by digest, from {released.registry}"
    if pull == "always":
        why += " (--pull always)"
    elif not here and pull == "never":
        why += f" (not present and --pull never; {spec.build_command(device)} builds it locally)"
    return ImageChoice(
        released.reference, "release", here, pulls, why, released.download_bytes if pulls else None
    )
