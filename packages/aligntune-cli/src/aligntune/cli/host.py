"""Probe this machine into a HostInfo: GPUs and driver, the docker engine, images, runners.

Nothing here imports torch or a runner: GPUs come from nvidia-smi, runners from import specs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from aligntune.core.backend_factory import RUNNER_MODULES, runner_installed
from aligntune.core.selection import GpuInfo, HostInfo

IMAGE_REPOSITORIES = ("aligntune/trl-runner", "aligntune/unsloth-runner")
DOCKER_TIMEOUT_S = 5


@dataclass
class DockerState:
    """What the docker engine said, or why it could not be asked."""

    reachable: bool = False
    version: str | None = None
    runtimes: tuple[str, ...] = ()
    images: dict[str, dict[str, str]] = field(default_factory=dict)
    """tag -> labels, for aligntune images."""
    error: str | None = None


def docker_client() -> Any:
    """A docker SDK client for the engine DOCKER_HOST (or the default socket) points at."""
    import docker

    return docker.from_env(timeout=DOCKER_TIMEOUT_S)


def _engine_get(path: str) -> Any:
    """GET one engine API path as JSON over the socket DOCKER_HOST names.

    Plain HTTP/1.0 on a socket: http.client (and the SDK) would cost more import time than
    `aligntune plan` is allowed in total.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: Any = host[len("unix://") :]
    else:
        name, _, port = host.split("://", 1)[-1].rpartition(":")
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
    """The engine's info and aligntune images through the SDK (TLS-protected engines)."""
    client = docker_client()
    images = client.images.list(filters={"reference": [f"{r}:*" for r in IMAGE_REPOSITORIES]})
    return client.info(), [{"RepoTags": i.tags, "Labels": i.labels} for i in images]


def probe_docker() -> DockerState:
    """Ask the docker engine for its version, runtimes and aligntune images.

    Plain engine API calls over the socket keep `aligntune plan` fast; the SDK, slow to import,
    is used only where TLS is configured.
    """
    reference = json.dumps({"reference": [f"{r}:*" for r in IMAGE_REPOSITORIES]})
    try:
        if os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CERT_PATH"):
            info, images = _probe_with_sdk()
        else:
            info = _engine_get("/info")
            images = _engine_get(f"/images/json?filters={urllib.parse.quote(reference)}")
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
        return "no docker engine answers on " + os.environ.get(
            "DOCKER_HOST", "unix:///var/run/docker.sock"
        )
    return text[:200]


def probe_gpus() -> tuple[tuple[GpuInfo, ...], str | None]:
    """NVIDIA GPUs and the driver version, from nvidia-smi; none when it is absent or fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return (), None
    query = "--query-gpu=name,memory.total,compute_cap,driver_version"
    try:
        out = subprocess.run(
            [smi, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return (), None
    gpus, driver = [], None
    for line in out.strip().splitlines():
        name, memory, capability, driver = (part.strip() for part in line.split(","))
        gpus.append(GpuInfo(name, int(float(memory or 0)), capability or None))
    return tuple(gpus), driver


def installed_runners() -> frozenset[str]:
    """Backends whose runner package can be imported here (found without importing it)."""
    return frozenset(b for b in RUNNER_MODULES if runner_installed(b))


def nnodes_from_env() -> int:
    """The number of nodes the environment declares (NNODES), 1 when unset."""
    value = os.environ.get("NNODES", "1")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def probe_host(*, docker: bool = True, nnodes: int | None = None) -> tuple[HostInfo, DockerState]:
    """This machine as a HostInfo, plus the raw docker state for reports."""
    gpus, driver = probe_gpus()
    state = probe_docker() if docker else DockerState(error="not asked (--runtime local)")
    host = HostInfo(
        gpus=gpus,
        driver_version=driver,
        docker_available=state.reachable,
        docker_version=state.version,
        nvidia_runtime="nvidia" in state.runtimes,
        images=frozenset(state.images),
        runner_packages=installed_runners(),
        nnodes=nnodes or nnodes_from_env(),
        notes=(state.error,) if state.error else (),
    )
    return host, state
