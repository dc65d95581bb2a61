"""`aligntune diagnose`: what this host can run, and the command that fixes each problem."""

from __future__ import annotations

import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from aligntune.cli.engine import DockerState
from aligntune.cli.host import probe_host
from aligntune.core.backends import BACKENDS
from aligntune.core.images import choose_image
from aligntune.core.plan import HostInfo
from aligntune.core.version import VERSION


@dataclass
class Check:
    """One line of the report: what was checked, what was found, and the fix if it is a problem."""

    name: str
    ok: bool
    found: str
    fix: str | None = None


@dataclass
class Report:
    """The diagnose report."""

    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, ok: bool, found: str, fix: str | None = None) -> None:
        self.checks.append(Check(name, ok, found, None if ok else fix))

    def lines(self) -> list[str]:
        out = []
        for check in self.checks:
            out.append(f"[{'ok' if check.ok else '!!'}] {check.name}: {check.found}")
            if check.fix:
                out.append(f"     fix: {check.fix}")
        problems = sum(not c.ok for c in self.checks)
        out.append(f"{problems} problem(s) found" if problems else "no problems found")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"checks": [vars(c) for c in self.checks]}


def _compose_version() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        result = subprocess.run(
            [docker, "compose", "version", "--short"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def diagnose_report() -> Report:
    """Probe the host and describe every part aligntune relies on."""
    report = Report()
    host, docker = probe_host()
    report.add("aligntune", True, f"{VERSION} on Python {platform.python_version()}")
    report.add(
        "docker engine",
        docker.reachable,
        f"reachable, version {docker.version}"
        if docker.reachable
        else f"not reachable ({docker.error})",
        "install and start it: bash scripts/install-docker.sh (or use --runtime local)",
    )
    compose = _compose_version()
    report.add(
        "docker compose",
        compose is not None,
        f"version {compose}" if compose else "plugin not found",
        "bash scripts/install-docker.sh installs the Compose v2 plugin",
    )
    if host.gpus:
        names = ", ".join(
            f"{g.name} ({g.memory_mib} MiB, sm {g.compute_capability})" for g in host.gpus
        )
        report.add("NVIDIA GPUs", True, f"{names}; driver {host.driver_version}")
        report.add(
            "docker nvidia runtime",
            host.nvidia_runtime,
            "present" if host.nvidia_runtime else "absent: containers cannot use the GPUs",
            "install the NVIDIA Container Toolkit and restart the docker engine",
        )
    else:
        cpu_backends = ", ".join(b.title for b in BACKENDS if not b.needs_gpu)
        report.add(
            "NVIDIA GPUs",
            True,
            f"none found (nvidia-smi absent or no GPU): {cpu_backends} on CPU only",
        )
    _add_backends(report, host, docker)
    return report


def _add_backends(report: Report, host: HostInfo, docker: DockerState) -> None:
    """Each backend's images and whether its runner is installed here."""
    for backend in BACKENDS:
        for device in backend.devices:
            tag = backend.image_tag(device)
            choice = choose_image(backend, device, frozenset(docker.images))
            labels = docker.images.get(choice.reference)
            # auto never picks a GPU backend's CPU mode, so its cpu image is optional anywhere.
            needed = bool(host.gpus) if device == "cuda" else not backend.needs_gpu
            if labels is not None:
                lock = labels.get("org.aligntune.lock-sha256", "?")[:12]
                found = f"present, {choice.source} (lock {lock})"
            elif choice.pull:
                found = f"the first run pulls {choice.reference}"
            else:
                found = "not built"
            report.add(
                f"image {tag}",
                labels is not None or choice.pull or not needed or not docker.reachable,
                found if docker.reachable else "unknown (no docker engine)",
                backend.build_command(device),
            )
    for backend in BACKENDS:
        installed = backend.name in host.runner_packages
        report.add(
            f"{backend.name} runner in this Python",
            True,
            "installed (--runtime local works)"
            if installed
            else "not installed (docker runtime only)",
        )
