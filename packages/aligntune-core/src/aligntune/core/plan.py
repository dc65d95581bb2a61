"""What planning works with: the host as the launcher found it (`HostInfo`) and the chosen way to
run a recipe (`Plan`), which `aligntune.core.selection` makes and the run directory keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from aligntune.core.backends import BackendChoice, BackendName, Device
from aligntune.core.version import VERSION

Runtime = Literal["docker", "local", "in-process"]
"""How a run starts: in the backend's image, by the runner installed here, or in this process."""


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as the host reports it."""

    name: str
    memory_mib: int = 0
    compute_capability: str | None = None


@dataclass(frozen=True)
class HostInfo:
    """What the launcher found out about this machine; built by the CLI, never by core."""

    gpus: tuple[GpuInfo, ...] = ()
    driver_version: str | None = None
    docker_available: bool = False
    docker_version: str | None = None
    nvidia_runtime: bool = False
    """The docker engine can give containers GPUs (nvidia container toolkit)."""
    images: frozenset[str] = frozenset()
    """aligntune image tags present in the local docker engine."""
    runner_packages: frozenset[str] = frozenset()
    """Backends whose runner package is installed in the launcher's Python environment."""
    nnodes: int = 1
    """Number of machines taking part (from NNODES or the run's flags)."""
    notes: tuple[str, ...] = field(default=())
    """Why something is missing (e.g. the docker engine's error), for the reasons."""


class Plan(BaseModel):
    """The chosen way to run a recipe on this host, with the reasons."""

    backend: BackendName
    device: Device
    runtime: Runtime
    image: str | None
    """The image the run uses (docker runtime)."""
    image_available: bool
    image_source: Literal["local build", "release"] | None = None
    """Where the image comes from: built here, or the released one pinned by digest."""
    image_pull: bool = False
    """The run pulls the image first (`--pull`)."""
    image_download_bytes: int | None = None
    """What that pull downloads, when the release recorded it."""
    algorithm: str
    requested_backend: BackendChoice
    gpus: int
    nnodes: int
    processes_per_node: int
    reasons: list[str]
    warnings: list[str]
    version: str = VERSION

    def summary_lines(self) -> list[str]:
        """The plan as `key: value` lines, then the reasons and warnings."""
        lines = [
            f"backend:   {self.backend} (requested: {self.requested_backend})",
            f"device:    {self.device}" + (f" ({self.gpus} GPU)" if self.gpus else ""),
            f"runtime:   {self.runtime}",
        ]
        if self.image:
            lines.append(f"image:     {self.image} ({self._image_state()})")
        if self.nnodes > 1 or self.processes_per_node > 1:
            lines.append(f"processes: {self.nnodes} node(s) x {self.processes_per_node}")
        lines.extend(f"why:       {reason}" for reason in self.reasons)
        lines.extend(f"warning:   {warning}" for warning in self.warnings)
        return lines

    def _image_state(self) -> str:
        if self.image_pull:
            size = self.image_download_bytes
            return "will be pulled" + (f", {size / 1e9:.2f} GB" if size else "")
        if self.image_available:
            return f"present, {self.image_source}" if self.image_source else "present"
        return "not present" if self.image_source == "release" else "not built"
