"""Where this run sits in a multi-node job: node count, this node's rank, the rendezvous.

Never from the recipe: flags of `aligntune run` win, else the environment (NNODES, NODE_RANK,
MASTER_ADDR, MASTER_PORT), else Slurm's or a Kubernetes Indexed Job's own variables
(`aligntune.core.topology.topology_settings`). Pure: no torch, no docker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aligntune.core.errors import UsageError
from aligntune.core.topology import (
    DEFAULT_PORT,
    MASTER_ADDR,
    MASTER_PORT,
    NNODES,
    NODE_RANK,
    Setting,
    topology_settings,
)


@dataclass(frozen=True)
class Topology:
    """This node's place in the job; one node with no rendezvous when nothing is set."""

    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    """Each value's origin (`--nnodes`, `NNODES`, `SLURM_NODEID`, ...), for plans and logs."""

    @property
    def multi_node(self) -> bool:
        """More than one machine takes part."""
        return self.nnodes > 1

    def environment(self) -> dict[str, str]:
        """The variables the runner reads (values: they are addresses, not secrets)."""
        if not self.multi_node and self.master_addr is None and self.master_port is None:
            return {}
        env = {NNODES: str(self.nnodes), NODE_RANK: str(self.node_rank)}
        if self.master_addr is not None:
            env[MASTER_ADDR] = self.master_addr
        if self.master_port is not None:
            env[MASTER_PORT] = str(self.master_port)
        return env

    def describe(self) -> str:
        """`node 1 of 2, rendezvous node0:29500` for plans and logs."""
        where = f", rendezvous {self.master_addr}:{self.master_port}" if self.master_addr else ""
        return f"node {self.node_rank} of {self.nnodes}{where}{self._origins()}"

    def _origins(self) -> str:
        if not self.sources:
            return ""
        return " (" + "; ".join(f"{name} from {src}" for name, src in self.sources.items()) + ")"


def _integer(name: str, value: str | int | None, minimum: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name}={value!r} is not a whole number") from None
    if number < minimum:
        raise UsageError(f"{name}={number} must be at least {minimum}")
    return number


def _setting(settings: Mapping[str, Setting], name: str, minimum: int) -> int | None:
    found = settings.get(name)
    return None if found is None else _integer(found.source, found.value, minimum)


def resolve_topology(
    env: Mapping[str, str],
    *,
    nnodes: int | None = None,
    node_rank: int | None = None,
    master_addr: str | None = None,
    master_port: int | None = None,
) -> Topology:
    """Flags first, then NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT, then the scheduler's
    variables; refuse one that cannot work. `sources` says where each value came from."""
    settings = topology_settings(env)
    flags = {
        NNODES: nnodes,
        NODE_RANK: node_rank,
        MASTER_ADDR: master_addr,
        MASTER_PORT: master_port,
    }
    for name, flag in flags.items():
        if flag is not None and flag != "":
            settings[name] = Setting(str(flag), "--" + name.lower().replace("_", "-"))
    count = _setting(settings, NNODES, 1) or 1
    rank = _setting(settings, NODE_RANK, 0) or 0
    address = settings[MASTER_ADDR].value if MASTER_ADDR in settings else None
    port = _setting(settings, MASTER_PORT, 1)
    if port is not None and port > 65535:
        raise UsageError(f"master port {port} is not a TCP port (1-65535)")
    if rank >= count:
        raise UsageError(
            f"node rank {rank} is not below the number of nodes {count} "
            "(ranks count from 0: the first node is 0, the last NNODES-1)"
        )
    if count > 1 and not address:
        raise UsageError(
            f"{count} nodes need a rendezvous address: set MASTER_ADDR (or --master-addr) "
            "to node 0's host name or IP, the same on every node"
        )
    sources = {name: s.source for name, s in settings.items()}
    if count > 1 and port is None:
        port = DEFAULT_PORT
        sources[MASTER_PORT] = "default"
    return Topology(count, rank, address, port, sources)
