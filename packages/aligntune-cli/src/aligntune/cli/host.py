"""Probe this machine into a HostInfo: GPUs and driver, the docker engine, images, runners.

Nothing here imports torch or a runner: GPUs come from nvidia-smi, runners from import specs,
the docker engine's state from `aligntune.cli.engine`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from aligntune.cli.engine import DockerState, probe_docker
from aligntune.core.backends import BACKENDS
from aligntune.core.plan import GpuInfo, HostInfo
from aligntune.core.topology import NNODES, topology_settings


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
    return frozenset(b.name for b in BACKENDS if b.runner_installed())


def nnodes_from_env() -> int:
    """The number of nodes the environment declares (NNODES, else Slurm's), 1 when unset."""
    setting = topology_settings(os.environ).get(NNODES)
    value = setting.value if setting else "1"
    return int(value) if value.isdigit() and int(value) > 0 else 1


def probe_host(
    *, docker: bool = True, nnodes: int | None = None, engine: DockerState | None = None
) -> tuple[HostInfo, DockerState]:
    """This machine as a HostInfo, plus the raw docker state for reports.

    `engine` is the docker state when the caller already asked for it (see EngineProbe).
    """
    gpus, driver = probe_gpus()
    if not docker:
        state = DockerState(error="not asked (--runtime local)")
    else:
        state = engine or probe_docker()
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
