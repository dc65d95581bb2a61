"""The docker engine's version, runtimes and aligntune images, asked over its socket.

Standard library only (the SDK only where TLS is configured), so `aligntune plan` can start the
question in a thread before it imports the recipe models, and the engine answers meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from aligntune.core.backends import BACKENDS
from aligntune.core.images import released_image

IMAGE_REPOSITORIES = tuple(backend.image_repository for backend in BACKENDS)
DOCKER_TIMEOUT_S = 5
DEFAULT_HOST = "unix:///var/run/docker.sock"


@dataclass
class DockerState:
    """What the docker engine said, or why it could not be asked."""

    reachable: bool = False
    version: str | None = None
    runtimes: tuple[str, ...] = ()
    images: dict[str, dict[str, str]] = field(default_factory=dict)
    """tag -> labels, for aligntune images."""
    error: str | None = None


def engine_host() -> str | None:
    """DOCKER_HOST; None when unset or empty (the SDK and the docker CLI then use the
    current docker context, else the default socket)."""
    return os.environ.get("DOCKER_HOST") or None


def _current_context() -> str:
    """The docker context chosen by DOCKER_CONTEXT, else by the docker CLI's config.json."""
    chosen = os.environ.get("DOCKER_CONTEXT", "").strip()
    if chosen:
        return chosen
    folder = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as config:
            return str(json.load(config).get("currentContext") or "default")
    except (OSError, ValueError, AttributeError):
        return "default"


def needs_sdk() -> bool:
    """Whether only the docker SDK can reach the engine the run's container starts on: TLS, a
    DOCKER_HOST other than unix:// or tcp://HOST:PORT (ssh, a port left out: the SDK explains),
    or a docker context other than the default one (which the plain socket probe would miss)."""
    if os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CERT_PATH"):
        return True
    host = engine_host()
    if host is None:
        return _current_context() != "default"
    if host.startswith("unix://"):
        return False
    return re.fullmatch(r"tcp://[^/:@]+:\d+", host) is None


def docker_client(timeout: int | None = DOCKER_TIMEOUT_S) -> Any:
    """A docker SDK client for the engine the docker CLI would use: DOCKER_HOST, else the
    current docker context, else the default socket. A context that does not exist is an
    OSError: the SDK would fall back to the default engine, the docker CLI refuses."""
    import docker
    from docker.context import ContextAPI

    context = _current_context()
    if not engine_host() and ContextAPI.get_context(context) is None:
        raise OSError(f"the docker context {context} does not exist (see docker context ls)")
    # None: no read timeout (requests takes it as such), for following a quiet container's log.
    return docker.from_env(timeout=timeout)  # type: ignore[arg-type]


def _engine_get(path: str) -> Any:
    """GET one engine API path as JSON over the socket DOCKER_HOST names.

    Plain HTTP/1.0 on a socket: http.client (and the SDK) would cost more import time than
    `aligntune plan` is allowed in total.
    """
    host = engine_host()
    if host is None or host.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # As the SDK reads it: a trailing slash dropped, `unix://` alone the default socket.
        address: Any = (host or "")[len("unix://") :].rstrip("/") or DEFAULT_HOST[len("unix://") :]
    else:
        name, _, port = host.split("://", 1)[1].rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = (name, int(port))
    with sock:
        sock.settimeout(DOCKER_TIMEOUT_S)
        sock.connect(address)
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        response = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"?"
    if status != b"200":
        raise OSError(f"docker engine answered {status.decode(errors='replace')} to GET {path}")
    return json.loads(body)


def _probe_with_sdk() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The engine's info and aligntune images through the SDK (TLS, ssh, a docker context)."""
    import docker

    client = docker_client()
    images = client.images.list(filters={"reference": [f"{r}:*" for r in IMAGE_REPOSITORIES]})
    found = [{"RepoTags": i.tags, "Labels": i.labels} for i in images]
    for reference in released_references():
        with contextlib.suppress(docker.errors.ImageNotFound):
            found.append({"RepoTags": [reference], "Labels": client.images.get(reference).labels})
    return client.info(), found


def released_references() -> list[str]:
    """The released images of this version (pinned by digest), each backend and device."""
    found = (released_image(b, device) for b in BACKENDS for device in b.devices)
    return [image.reference for image in found if image is not None]


def _present_released() -> list[dict[str, Any]]:
    """The released images the engine holds, listed like /images/json lists tagged ones."""
    present = []
    for reference in released_references():
        try:
            labels = _engine_get(f"/images/{reference}/json")["Config"].get("Labels")
        except OSError:  # 404: not pulled yet
            continue
        present.append({"RepoTags": [reference], "Labels": labels})
    return present


def probe_docker() -> DockerState:
    """Ask the docker engine for its version, runtimes and aligntune images.

    Plain engine API calls over the socket keep `aligntune plan` fast; the SDK, slow to import,
    is used wherever the engine is not a plain socket (`needs_sdk`).
    """
    reference = json.dumps({"reference": [f"{r}:*" for r in IMAGE_REPOSITORIES]})
    try:
        if needs_sdk():
            info, images = _probe_with_sdk()
        else:
            info = _engine_get("/info")
            images = _engine_get(f"/images/json?filters={urllib.parse.quote(reference)}")
            images += _present_released()
    except Exception as exc:  # socket, HTTP and SDK errors all mean: engine not usable
        return DockerState(error=_short_error(exc))
    state = DockerState(
        reachable=True,
        version=info.get("ServerVersion"),
        runtimes=tuple(sorted(info.get("Runtimes") or {})),
    )
    for image in images:
        for tag in image.get("RepoTags") or ():
            state.images[tag] = dict(image.get("Labels") or {})
    return state


def _short_error(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)) or "Connection refused" in text:
        return "no docker engine answers on " + (engine_host() or DEFAULT_HOST)
    return text[:200]


class EngineProbe:
    """probe_docker() running in a thread from the moment this is made; result() waits for it."""

    def __init__(self) -> None:
        self._state = DockerState(error="the engine probe did not finish")
        self._thread = threading.Thread(target=self._probe, name="docker-probe", daemon=True)
        self._thread.start()

    def _probe(self) -> None:
        self._state = probe_docker()

    def result(self) -> DockerState:
        """The engine's state (probe_docker turns every failure into DockerState.error)."""
        self._thread.join()
        return self._state
