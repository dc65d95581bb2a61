"""The container a run needs, as plain data: image, command, mounts, env names, user, GPUs.

Pure: nothing here talks to docker or reads a secret's value. `launch.py` turns a ContainerSpec
into a real container; tests assert on the spec itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aligntune.cli.mounts import (
    HF_CACHE_MOUNT,
    RECIPE_MOUNT,
    RUN_MOUNT,
    Mount,
    RunPaths,
    run_mounts,
)
from aligntune.cli.topology import Topology
from aligntune.core.errors import UsageError
from aligntune.core.paths import recorded_names, reference_arguments
from aligntune.core.plan import Plan
from aligntune.core.recipe import Recipe
from aligntune.core.version import VERSION

PASSTHROUGH_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "WANDB_API_KEY",
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "WANDB_MODE",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
"""Host variables handed to the container by name when set; their values never enter a spec.
The topology (NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT) is not among them: it is resolved from
flags and environment first, then passed by value (see `topology.py`)."""

SHM_SIZE = "2g"
"""Docker's default 64 MB /dev/shm kills DataLoader workers."""
CUDA_ULIMITS = {"stack": 67108864}
"""The stack size NVIDIA recommends for PyTorch containers. Not `memlock=-1`: an engine without
CAP_SYS_RESOURCE (rootless, some sandboxes) refuses to start such a container at all."""
STOP_TIMEOUT_S = 120
"""How long a stopping run may take to save its checkpoint before it is killed."""


@dataclass(frozen=True)
class GpuRequest:
    """GPUs for a cuda container: all of them, a count, or device ids."""

    count: int | None = None
    """-1 for all GPUs; None when device_ids are given."""
    device_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerSpec:
    """Everything `launch.start_container` needs; no secret values, only variable names."""

    image: str
    name: str
    command: tuple[str, ...]
    mounts: tuple[Mount, ...]
    environment: dict[str, str]
    """Fixed, non-secret variables (HF_HOME, the topology)."""
    passthrough_env: tuple[str, ...]
    """Host variables passed by name (their values are read only when the container starts)."""
    user: str
    labels: dict[str, str]
    working_dir: str = RUN_MOUNT
    init: bool = True
    shm_size: str = SHM_SIZE
    gpus: GpuRequest | None = None
    ulimits: dict[str, int] | None = None
    stop_timeout_s: int = STOP_TIMEOUT_S
    network: str | None = None
    """`host`, a named docker network, or None for docker's default bridge."""
    network_aliases: tuple[str, ...] = ()
    """Names other containers on a named network reach this one by (node 0: the rendezvous)."""

    def describe(self) -> dict[str, Any]:
        """The spec as JSON-friendly data for plan.json (names only, never values)."""
        return {
            "image": self.image,
            "name": self.name,
            "command": list(self.command),
            "mounts": [vars(m) for m in self.mounts],
            "environment": dict(self.environment),
            "passthrough_env": list(self.passthrough_env),
            "user": self.user,
            "init": self.init,
            "shm_size": self.shm_size,
            "gpus": vars(self.gpus) if self.gpus else None,
            "ulimits": self.ulimits,
            "network": self.network,
            "network_aliases": list(self.network_aliases),
        }


def parse_gpus(value: str | None) -> GpuRequest | None:
    """`--gpus`: all, a count (2), or device ids (device=0,1 or 0,1); None when not given."""
    if value is None:
        return None
    text = value.strip()
    if text == "all":
        return GpuRequest(count=-1)
    if text.isdigit() and int(text) > 0:
        return GpuRequest(count=int(text))
    ids = text.removeprefix("device=").strip("\"'")
    # A device is an index or an NVIDIA UUID (GPU-..., MIG-...); `0` alone is not a count.
    device = r"(\d+|(GPU|MIG)-[\w/-]+)"
    if text != "0" and re.fullmatch(rf"{device}(,{device})*", ids):
        return GpuRequest(device_ids=tuple(ids.split(",")))
    raise UsageError(
        f"--gpus {value!r}: use all, a count such as 2, or device=0,1 (GPU indexes or UUIDs)"
    )


def _safe_name(recipe: Recipe) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", recipe.run_name)[:40]


def container_name(run_dir: Path, recipe: Recipe, topology: Topology | None = None) -> str:
    """One name per run directory (and node), so two launches of the same run cannot overlap."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:10]
    # Two nodes of one job may share a docker engine and a run directory: the rank tells them apart.
    node = f"-node{topology.node_rank}" if topology and topology.multi_node else ""
    return f"aligntune-{_safe_name(recipe)}-{digest}{node}"


def node_alias(recipe: Recipe, node_rank: int) -> str:
    """The name a node's container answers to on a named network: node 0's is MASTER_ADDR."""
    return f"aligntune-{_safe_name(recipe)}-node{node_rank}"


def container_network(
    recipe: Recipe, topology: Topology, network: str | None
) -> tuple[str | None, tuple[str, ...]]:
    """The network and aliases: host networking for several machines unless a network is named."""
    if network is None and (topology.multi_node or topology.master_addr):
        # Each node runs on its own machine: bridge NAT would hide node 0's rendezvous port, and
        # a rendezvous address (one Slurm gives a one-node job too) names a host, not a container.
        network = "host"
    if network in (None, "host", "bridge", "none"):
        return network, ()
    return network, (node_alias(recipe, topology.node_rank),)


def build_container_spec(
    plan: Plan,
    recipe: Recipe,
    paths: RunPaths,
    *,
    user: str,
    gpus: GpuRequest | None = None,
    mode: str = "auto",
    topology: Topology | None = None,
    network: str | None = None,
) -> ContainerSpec:
    """The container for `plan`: the runner reads the recipe from its folder's mount, and the
    command hands it the container path of each local reference (`--reference FIELD=PATH`) and
    the host paths the run directory records (`--host-path FIELD=PATH`, `output.dir` too)."""
    if plan.image is None:
        raise UsageError("the docker runtime needs an image; this plan has none")
    if gpus is not None and plan.device != "cuda":
        raise UsageError(
            f"--gpus needs a cuda image; this plan trains on {plan.device} "
            "(no GPU usable by docker here)"
        )
    mounts, references = run_mounts(recipe, paths)
    command = ["run", f"{RECIPE_MOUNT}/{paths.recipe_file.name}", "--output", RUN_MOUNT]
    command += reference_arguments(references, recorded_names(recipe, paths.run_dir.resolve()))
    if mode in ("resume", "restart"):
        command.append(f"--{mode}")
    # No PYTHONPATH: the runner imports `module:function` rewards from the recipe's folder itself
    # (aligntune.core.rewards), and a stray `copy.py` there must not hide the standard library.
    environment = {"HF_HOME": HF_CACHE_MOUNT}
    topology = topology or Topology()
    environment.update(topology.environment())
    network, aliases = container_network(recipe, topology, network)
    cuda = plan.device == "cuda"
    spec = ContainerSpec(
        image=plan.image,
        name=container_name(paths.run_dir, recipe, topology),
        command=tuple(command),
        mounts=mounts,
        environment=environment,
        passthrough_env=PASSTHROUGH_ENV,
        user=user,
        labels={
            "org.aligntune.run": recipe.run_name,
            "org.aligntune.run-dir": str(paths.run_dir.resolve()),
            "org.aligntune.backend": plan.backend,
            "org.aligntune.device": plan.device,
            "org.aligntune.version": VERSION,
        },
        gpus=(gpus or GpuRequest(count=-1)) if cuda else None,
        ulimits=dict(CUDA_ULIMITS) if cuda else None,
        network=network,
        network_aliases=aliases,
    )
    return spec
