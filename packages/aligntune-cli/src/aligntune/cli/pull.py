"""Pulling a released runner image by digest, with progress; a pull that fails names the
registry and the three ways out (log in, a mirror, a local build), exit 3."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any

import typer

from aligntune.cli.engine import docker_client
from aligntune.core.errors import BackendUnavailableError
from aligntune.core.images import MIRROR_ENV

PULL_TIMEOUT_S = 600
"""The engine may be silent this long between progress messages (a large layer extracting)."""
REPORT_EVERY_S = 10.0
"""How often progress is printed where it cannot be redrawn in place (a log, a pipe)."""


class PullProgress:
    """Bytes downloaded over the layers the engine downloads (those it has are not counted),
    from its pull messages."""

    def __init__(self, reference: str, redraw: bool) -> None:
        self.reference = reference
        self.redraw = redraw
        self.layers: dict[str, tuple[int, int]] = {}
        self.last = time.monotonic()

    def update(self, message: dict[str, Any]) -> None:
        """Account one pull message and show the total when it is time to."""
        layer, detail = message.get("id"), message.get("progressDetail") or {}
        if layer and message.get("status") == "Downloading" and detail.get("total"):
            self.layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
        elif layer in self.layers and message.get("status") in (
            "Download complete",
            "Pull complete",
        ):
            total = self.layers[layer][1]
            self.layers[layer] = (total, total)
        now = time.monotonic()
        if self.layers and (self.redraw or now - self.last >= REPORT_EVERY_S):
            self.last = now
            self.show()

    def show(self) -> None:
        """`pulling REF: done / total MB` (over the layers the engine has begun to download)."""
        done = sum(current for current, _ in self.layers.values()) / 1e6
        total = sum(size for _, size in self.layers.values()) / 1e6
        line = f"pulling {self.reference}: {done:.1f} / {total:.1f} MB"
        if self.redraw:
            typer.echo(f"\r{line}", nl=False)
        else:
            typer.echo(line)


def pull_failed(
    reference: str, registry: str, reason: str, build_command: str
) -> BackendUnavailableError:
    """The one error every failed pull raises: the registry, the reason, the ways out."""
    reason = (reason.strip().splitlines() or ["no reason given"])[0][:240]
    return BackendUnavailableError(
        f"cannot pull {reference} from the registry {registry}: {reason}",
        hint=(
            f"docker login {registry} if it needs a login; or set {MIRROR_ENV} to a mirror that "
            f"holds this digest; or build the image locally: {build_command}"
        ),
    )


def pull_image(reference: str, registry: str, build_command: str, *, quiet: bool) -> None:
    """Pull `reference` (registry/repository@sha256:...) into the docker engine, with progress."""
    import docker

    repository, _, digest = reference.partition("@")
    started = time.monotonic()
    progress = PullProgress(reference, redraw=not quiet and sys.stdout.isatty())
    typer.echo(f"pulling {reference} ...")
    try:
        client = docker_client(PULL_TIMEOUT_S)
        messages: Iterable[dict[str, Any]] = client.api.pull(
            repository, tag=digest, stream=True, decode=True
        )
        for message in messages:
            if "error" in message:
                raise pull_failed(reference, registry, str(message["error"]), build_command)
            progress.update(message)
    except docker.errors.APIError as exc:
        reason = str(getattr(exc, "explanation", None) or exc)
        raise pull_failed(reference, registry, reason, build_command) from None
    except (docker.errors.DockerException, OSError) as exc:
        # The engine itself could not be reached, or went silent (requests' errors are OSErrors).
        raise pull_failed(reference, registry, str(exc), build_command) from None
    if progress.layers:
        progress.show()
        if progress.redraw:
            typer.echo("")
    typer.echo(f"pulled {reference} in {time.monotonic() - started:.0f} s")
