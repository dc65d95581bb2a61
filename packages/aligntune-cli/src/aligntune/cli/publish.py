"""`aligntune images publish`: push a locally built runner image to a registry and record its
digest in the release's package data (`released_images.json` in aligntune-core), before the
wheels are built. The release workflow and the registry test both come this way.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import typer

from aligntune.cli.images import IMAGES, require_docker_cli, source_root
from aligntune.core.backends import backend_of_image
from aligntune.core.errors import BackendUnavailableError, UsageError
from aligntune.core.images import RELEASED_IMAGES_FILE, ReleasedImage, record_released


def checkout_record() -> Path:
    """The checkout's copy of the released-images file, which its wheel packages."""
    core = source_root() / "packages" / "aligntune-core" / "src" / "aligntune" / "core"
    return core / RELEASED_IMAGES_FILE.name


def _docker(*args: str, quiet: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=quiet, text=True, check=False)
    if done.returncode != 0:
        reason = ((done.stderr or "").strip().splitlines() or ["see the output above"])[-1]
        raise BackendUnavailableError(f"docker {args[0]} {args[1]} failed: {reason[:240]}")
    return done.stdout or ""


def _insecure(registry: str) -> list[str]:
    # The engine talks plain http to a registry on this machine; `docker manifest` must be told.
    host = registry.rsplit(":", 1)[0]
    return ["--insecure"] if host in ("localhost", "127.0.0.1", "[::1]") else []


def download_bytes(reference: str, registry: str) -> int | None:
    """The compressed size a pull downloads, from the registry's manifest; None for an index
    (several platforms: the size depends on which one is pulled)."""
    manifest = json.loads(_docker("manifest", "inspect", *_insecure(registry), reference))
    if "layers" not in manifest:
        return None
    return int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in manifest["layers"])


def publish_image(image: str, device: str, registry: str, record: Path | None = None) -> None:
    """Push the local build of IMAGE for DEVICE to REGISTRY; record registry, repository, tag,
    digest and download size in `record` (default: the checkout's released_images.json)."""
    if image not in IMAGES or device not in IMAGES[image]:
        raise UsageError(f"no image {image} for {device}; images: {', '.join(IMAGES)}")
    registry = registry.strip().rstrip("/")
    if not registry or "/" in registry:
        raise UsageError(f"--registry {registry!r}: a registry host[:port], no path")
    require_docker_cli()
    spec = backend_of_image(image)
    local = spec.image_tag(device)
    remote = f"{registry}/{local}"
    _docker("image", "inspect", local)
    _docker("tag", local, remote)
    try:
        typer.echo(f"pushing {remote} ...")
        _docker("image", "push", remote, quiet=False)
        digests = json.loads(_docker("image", "inspect", "-f", "{{json .RepoDigests}}", remote))
    finally:
        _docker("image", "rm", remote)  # the tag only: the local build keeps the image
    prefix = f"{registry}/{spec.image_repository}@"
    digest = next((d[len(prefix) :] for d in digests if d.startswith(prefix)), None)
    if digest is None:
        raise BackendUnavailableError(f"the engine recorded no digest for {remote} after the push")
    reference = f"{prefix}{digest}"
    released = ReleasedImage(
        registry,
        spec.image_repository,
        local.rpartition(":")[2],
        digest,
        download_bytes(reference, registry),
    )
    path = record or checkout_record()
    record_released(released, path)
    typer.echo(f"published {reference}; recorded in {path}")
