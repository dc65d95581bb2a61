"""`aligntune images build|list`: build the runner images from a source checkout, list them.

A build needs no registry and no network inside: the base image is the public one when the
engine has or can pull it, else one made locally with debootstrap; every wheel comes from a
host-side wheelhouse (scripts/build-wheelhouse.sh).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import IO, Any

import typer

from aligntune.cli.image_sources import (
    installed_packages,
    is_build_debris,
    is_checkout,
    launcher_checkout,
    source_sha256,
)
from aligntune.core.backends import BACKENDS, backend_of_image
from aligntune.core.errors import BackendUnavailableError, UsageError
from aligntune.core.version import VERSION

IMAGES = {backend.image_name: backend.devices for backend in BACKENDS}
"""Each image and the devices it is built for."""
PUBLIC_BASE = "python:3.11-slim-bookworm"
LOCAL_BASE = "aligntune/base:bookworm-py311"


def source_root() -> Path:
    """The checkout holding images/ and packages/: ALIGNTUNE_SOURCE, else the cwd or a parent
    of it. A named source that is no checkout is refused: building the shared tag from another
    checkout instead would replace the image with other code."""
    named = os.environ.get("ALIGNTUNE_SOURCE", "").strip()
    if named:
        if is_checkout(Path(named)):
            return Path(named)
        raise UsageError(
            f"ALIGNTUNE_SOURCE={named} is not a source checkout of aligntune (no images/ and "
            "packages/ in it)",
            hint="set ALIGNTUNE_SOURCE to the checkout to build from, or unset it",
        )
    cwd = Path.cwd().resolve()
    root = next((f for f in (cwd, *cwd.parents) if is_checkout(f)), None) or launcher_checkout()
    if root is not None:
        return root
    raise UsageError(
        "images are built from a source checkout of aligntune (images/ and packages/)",
        hint="run this inside the checkout, or set ALIGNTUNE_SOURCE to it",
    )


def lock_sha256(root: Path, image: str, device: str) -> str:
    """sha256 of the image's lock file: the label that says which packages are inside."""
    return hashlib.sha256(
        (root / "images" / image / f"requirements-{device}.lock").read_bytes()
    ).hexdigest()


def _has_image(tag: str) -> bool:
    result = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return result.returncode == 0


def choose_base(root: Path, requested: str | None) -> str:
    """The base image: asked for, the public one (present or pulled), else made locally."""
    if requested:
        return requested
    for tag in (PUBLIC_BASE, LOCAL_BASE):
        if _has_image(tag):
            return tag
    typer.echo(f"pulling {PUBLIC_BASE} ...")
    pulled = subprocess.run(["docker", "pull", "-q", PUBLIC_BASE], capture_output=True, text=True)
    if pulled.returncode == 0:
        return PUBLIC_BASE
    reason = (pulled.stderr.strip().splitlines() or ["no reason given"])[-1]
    typer.echo(f"cannot pull {PUBLIC_BASE} ({reason[:120]}); making {LOCAL_BASE} with debootstrap")
    _script(root, "make-base-image.sh", LOCAL_BASE)
    return LOCAL_BASE


def _script(root: Path, name: str, *args: str) -> None:
    result = subprocess.run(["bash", str(root / "scripts" / name), *args], check=False)
    if result.returncode != 0:
        raise BackendUnavailableError(
            f"scripts/{name} {' '.join(args)} failed (exit {result.returncode})"
        )


def require_docker_cli() -> None:
    """Images are built and pushed with the docker command-line client, which a host that
    trains through the engine's API alone may lack."""
    if shutil.which("docker") is None:
        raise BackendUnavailableError(
            "the docker command-line client is not on PATH; images are built and pushed with it",
            hint="install the docker CLI (sudo bash scripts/install-docker.sh), or add it to PATH",
        )


def _check_target(root: Path, image: str, device: str) -> None:
    if image not in IMAGES:
        raise UsageError(f"unknown image {image!r}; choose one of {', '.join(IMAGES)}")
    if device not in IMAGES[image]:
        raise UsageError(f"{image} is built for {', '.join(IMAGES[image])} only, not {device}")
    if not (root / "images" / image / "Dockerfile").is_file():
        raise BackendUnavailableError(
            f"images/{image}/Dockerfile does not exist yet in {root}",
            hint=f"see images/{image}/README.md",
        )
    require_docker_cli()
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        raise BackendUnavailableError(
            "no docker engine answers", hint="start one: sudo bash scripts/install-docker.sh"
        )


def build_image(image: str, device: str | None = None, base_image: str | None = None) -> str:
    """Build one runner image (wheelhouse, base, docker build); return its tag."""
    root = source_root()
    device = device or "cpu"
    _check_target(root, image, device)
    started = time.monotonic()
    base = choose_base(root, base_image)
    _script(root, "build-wheelhouse.sh", image, device)
    tag = backend_of_image(image).image_tag(device)
    previous = image_id(tag)
    command = ["docker", "build", "-f", f"images/{image}/Dockerfile", "-t", tag]
    for key, value in {
        "BASE_IMAGE": base,
        "DEVICE": device,
        "VERSION": VERSION,
        "LOCK_SHA256": lock_sha256(root, image, device),
        "SOURCE_SHA256": source_sha256(root, image),
    }.items():
        command += ["--build-arg", f"{key}={value}"]
    typer.echo(f"building {tag} from {base} ...")
    # The legacy builder prints a deprecation banner where buildx is missing; it still works.
    # The context comes on stdin: only what this image copies, not every image's wheelhouse.
    build = subprocess.Popen([*command, "-"], cwd=root, stdin=subprocess.PIPE)
    assert build.stdin is not None
    try:
        write_context(root, context_paths(image, device), build.stdin)
        build.stdin.close()
    except BrokenPipeError:  # docker stopped reading: its own error is on the terminal
        pass
    if build.wait() != 0:
        raise BackendUnavailableError(f"docker build of {tag} failed (see the output above)")
    size = _image_size(tag)
    typer.echo(f"built {tag} ({size / 1e9:.2f} GB) in {time.monotonic() - started:.0f} s")
    removed = remove_replaced(previous, tag)
    if removed:
        typer.echo(f"removed the build it replaced ({removed / 1e9:.2f} GB)")
    return tag


def image_id(tag: str) -> str | None:
    """The id of the image `tag` names in the engine, or None."""
    result = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", tag], capture_output=True, text=True
    )
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def remove_replaced(previous: str | None, tag: str) -> int:
    """Remove the image `tag` named before a rebuild, now untagged, so rebuilds do not fill the
    disk (each keeps its own layers); never one that a container or another tag still uses.
    The bytes it held, or 0 when nothing was removed."""
    if previous is None or previous == image_id(tag):
        return 0
    inspected = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{len .RepoTags}} {{.Size}}", previous],
        capture_output=True,
        text=True,
    )
    tags, _, size = inspected.stdout.strip().partition(" ")
    if inspected.returncode != 0 or tags != "0":
        return 0
    removed = subprocess.run(["docker", "image", "rm", previous], capture_output=True, text=True)
    return int(size or 0) if removed.returncode == 0 else 0


def context_paths(image: str, device: str) -> list[str]:
    """The paths (from the checkout's root) that `images/IMAGE/Dockerfile` copies for DEVICE."""
    return [f"images/{image}", *installed_packages(image), f".wheelhouse/{image}-{device}"]


def _without_build_debris(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if is_build_debris(info.name.rsplit("/", 1)[-1]):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(info.mtime)  # a float mtime would need a pax header (see write_context)
    return info


def write_context(root: Path, paths: list[str], sink: IO[bytes]) -> None:
    """Stream `paths` under `root` to `sink` as a docker build context (a tar).

    GNU format, integer mtimes: docker recognises a context on stdin by parsing its first 512
    bytes as a tar header, and a pax header there would make it read the tar as a Dockerfile.
    """
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for path in paths:
            tar.add(root / path, arcname=path, filter=_without_build_debris)


def _image_size(tag: str) -> int:
    result = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True
    )
    return int(result.stdout.strip() or 0)


def _pulled(client: Any, references: list[str]) -> list[tuple[Any, str]]:
    """The released images (pinned by digest) the engine holds, each with its reference."""
    import docker

    held = []
    for reference in references:
        with contextlib.suppress(docker.errors.ImageNotFound):
            held.append((client.images.get(reference), reference))
    return held


def list_images() -> list[str]:
    """One line per aligntune image in the engine: tag, device, size, lock hash, created."""
    from aligntune.cli.engine import IMAGE_REPOSITORIES, docker_client, released_references

    try:
        client = docker_client()
        found = client.images.list(filters={"reference": [f"{r}:*" for r in IMAGE_REPOSITORIES]})
        released = _pulled(client, released_references())
    except Exception as exc:  # the SDK raises requests/urllib3/OSError variants alike
        raise BackendUnavailableError(
            f"cannot list images: {exc}", hint="start docker: sudo bash scripts/install-docker.sh"
        ) from None
    rows = [f"{'image':44} {'device':6} {'size':>8}  {'lock':12}  created"]
    for item, names in [*((i, i.tags) for i in found), *((i, [r]) for i, r in released)]:
        labels = item.labels or {}
        for tag in names:
            rows.append(
                f"{tag:44} {labels.get('org.aligntune.device', '?'):6} "
                f"{item.attrs.get('Size', 0) / 1e9:7.2f}G  "
                f"{labels.get('org.aligntune.lock-sha256', '?')[:12]:12}  "
                f"{item.attrs.get('Created', '')[:19]}"
            )
    if len(rows) == 1:
        rows.append(f"(none built: {BACKENDS[0].build_command('cpu')})")
    return rows
