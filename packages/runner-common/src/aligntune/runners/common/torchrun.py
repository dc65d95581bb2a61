"""The launcher half of a many-process run: start the worker group through torchrun.

When a recipe asks for more than one process (distributed.processes_per_node > 1, or NNODES > 1)
and this process is not already a worker, the runner hands its own command line to torchrun
(`torch.distributed.run`, in-process, so the worker group's exit codes come back) and returns the
workers' exit code. What the workers share once started is in `distributed`.

torch is imported only inside functions: the Unsloth runner must import unsloth before it.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aligntune.core.backends import get_backend
from aligntune.core.errors import (
    BackendUnavailableError,
    ExitCode,
    UsageError,
    error_lines,
    signal_exit_code,
)
from aligntune.core.paths import reference_arguments
from aligntune.core.recipe import Recipe
from aligntune.core.topology import (
    DEFAULT_PORT,
    MASTER_ADDR,
    MASTER_PORT,
    NNODES,
    NODE_RANK,
    topology_settings,
)

WORKER_ENV = ("LOCAL_RANK", "WORLD_SIZE")
"""Set by torchrun (and accelerate) in each worker: their presence means "already a worker"."""
RDZV_TIMEOUT_ENV = "ALIGNTUNE_RDZV_TIMEOUT"
DEFAULT_RDZV_TIMEOUT_S = 300
"""How long nodes wait for each other before giving up with a message (not a hang)."""
SHUTDOWN_TIMEOUT_S = 110
"""How long torchrun lets stopping workers save their checkpoint; under the CLI's 120 s."""


@dataclass(frozen=True)
class WorkerGroup:
    """The processes this node starts, and where the nodes meet."""

    nnodes: int
    node_rank: int
    processes_per_node: int
    master_addr: str | None
    master_port: int
    rdzv_timeout_s: int

    @property
    def world_size(self) -> int:
        """Processes across all nodes."""
        return self.nnodes * self.processes_per_node

    def describe(self) -> str:
        """`2 processes on node 0 of 2 (world size 4), rendezvous node0:29500`."""
        where = f", rendezvous {self.master_addr}:{self.master_port}" if self.nnodes > 1 else ""
        return (
            f"{self.processes_per_node} process(es) on node {self.node_rank} of {self.nnodes} "
            f"(world size {self.world_size}){where}"
        )


def is_worker(env: Mapping[str, str] = os.environ) -> bool:
    """Whether this process was started by torchrun/accelerate as one of the workers."""
    return any(name in env for name in WORKER_ENV)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a whole number") from None


def rendezvous_timeout_s(env: Mapping[str, str] = os.environ) -> int:
    """How long nodes (and, once started, the workers' process group) wait for each other."""
    return _env_int(env, RDZV_TIMEOUT_ENV, DEFAULT_RDZV_TIMEOUT_S)


def adopt_scheduler_topology(env: MutableMapping[str, str] = os.environ) -> None:
    """Set NNODES, NODE_RANK, MASTER_ADDR from Slurm's or an Indexed Job's variables where they
    are unset (the worker group, the claim and the plan read those), and say where each came
    from. Run under `srun` or in a pod, the runner needs no other launcher."""
    if is_worker(env):
        return
    borrowed = {name: s for name, s in topology_settings(env).items() if s.source != name}
    if not borrowed:
        return
    env.update({name: setting.value for name, setting in borrowed.items()})
    found = "; ".join(f"{name}={s.value} from {s.source}" for name, s in borrowed.items())
    print(f"aligntune: topology {found}", file=sys.stderr)


def worker_group(recipe: Recipe, env: Mapping[str, str] = os.environ) -> WorkerGroup | None:
    """The group to start, or None when one process trains (or this already is a worker)."""
    if is_worker(env):
        return None
    nnodes = _env_int(env, NNODES, 1)
    per_node = recipe.distributed.processes_per_node
    if nnodes <= 1 and per_node <= 1:
        return None
    node_rank = _env_int(env, NODE_RANK, 0)
    if nnodes < 1 or not 0 <= node_rank < nnodes:
        raise UsageError(
            f"NODE_RANK={node_rank} does not fit NNODES={nnodes} "
            "(ranks count from 0: the first node is 0, the last NNODES-1)"
        )
    address = env.get(MASTER_ADDR) or None
    if nnodes > 1 and address is None:
        raise UsageError(
            f"NNODES={nnodes} needs MASTER_ADDR: node 0's host name or IP, the same on every node"
        )
    return WorkerGroup(
        nnodes=nnodes,
        node_rank=node_rank,
        processes_per_node=per_node,
        master_addr=address,
        master_port=_env_int(env, MASTER_PORT, DEFAULT_PORT),
        rdzv_timeout_s=rendezvous_timeout_s(env),
    )


def torchrun_arguments(group: WorkerGroup, module: str, args: list[str]) -> list[str]:
    """torchrun's command line (without `torchrun`) that runs `python -m module args` per worker."""
    if group.nnodes == 1 and group.master_addr is None:
        # One machine, nobody else to meet: a private rendezvous on a free port (what torchrun's
        # --standalone does in its main(), which launching in-process bypasses).
        topology = [
            "--rdzv-backend=c10d",
            "--rdzv-endpoint=localhost:0",
            f"--rdzv-id={uuid.uuid4()}",
        ]
    else:
        topology = [
            f"--nnodes={group.nnodes}",
            f"--node-rank={group.node_rank}",
            f"--master-addr={group.master_addr or '127.0.0.1'}",
            f"--master-port={group.master_port}",
            f"--rdzv-conf=timeout={group.rdzv_timeout_s}",
        ]
    return [
        *topology,
        f"--nproc-per-node={group.processes_per_node}",
        "--max-restarts=0",
        f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}",
        "--module",
        module,
        *args,
    ]


def launch_workers(group: WorkerGroup, module: str, args: list[str]) -> int:
    """Run the worker group through torchrun; the exit code of the worker that failed first."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, get_args_parser

    argv = torchrun_arguments(group, module, args)
    print(f"aligntune: {group.describe()}: torchrun {shlex.join(argv)}", file=sys.stderr)
    config, command, command_args = config_from_args(get_args_parser().parse_args(argv))
    try:
        elastic_launch(config, command)(*command_args)
    except ChildFailedError as exc:
        return failed_exit_code(exc.failures)
    except SignalException as exc:
        # torchrun passed the signal on and waited for the workers to save and stop, unless the
        # same stop reached this process twice (a scheduler signals every process of a job, and
        # the launcher passes it on too), which cuts torchrun's wait short: wait here instead.
        wait_for_workers(SHUTDOWN_TIMEOUT_S)
        return signal_exit_code(int(exc.sigval))
    except Exception as exc:  # rendezvous and store errors: one clear message, never a hang
        report_rendezvous_failure(group, exc)
        return ExitCode.UNAVAILABLE
    return ExitCode.OK


def wait_for_workers(timeout_s: float) -> None:
    """Wait (up to `timeout_s`) for this process's children, the workers, to finish saving.

    The stop was already asked for: further SIGTERM/SIGINT are ignored while waiting (the
    launcher, or the scheduler after its grace time, kills with SIGKILL)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # none left
            return
        if pid == 0:
            time.sleep(0.2)


def launch_run(
    group: WorkerGroup,
    backend: str,
    recipe: Path,
    output: Path | None,
    mode: str,
    references: Mapping[str, str] | None = None,
    host_paths: Mapping[str, str] | None = None,
) -> int:
    """Start the worker group on the backend's `python -m <runner> run ...`; its exit code."""
    args = ["run", str(recipe.resolve())]
    if output is not None:
        args += ["--output", str(output.resolve())]
    if mode != "auto":
        args.append(f"--{mode}")
    args += reference_arguments(references or {}, host_paths)
    return launch_workers(group, get_backend(backend).runner_module, args)


def failed_exit_code(failures: Mapping[int, Any]) -> int:
    """The root failure's exit code, as a shell reports it.

    A worker that exited with an error comes before one killed by a signal (torchrun kills the
    rest of the group when one fails), then the earliest, then the lowest rank.
    """
    if not failures:  # torchrun reported a failure without saying whose: its own bug
        return ExitCode.CRASH
    _, first = min(
        failures.items(),
        key=lambda item: (int(item[1].exitcode) < 0, item[1].timestamp, item[0]),
    )
    code = int(first.exitcode)
    return signal_exit_code(-code) if code < 0 else code


def report_rendezvous_failure(group: WorkerGroup, exc: BaseException) -> None:
    """Why the nodes did not meet, in the runner's `error:`/`hint:` form."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    error = BackendUnavailableError(
        f"the rendezvous at {group.master_addr}:{group.master_port} failed for node "
        f"{group.node_rank} of {group.nnodes} (waited up to {group.rdzv_timeout_s} s): "
        f"{type(exc).__name__}: {detail[:300]}",
        hint="start every node within that time, with the same NNODES, MASTER_ADDR and "
        f"MASTER_PORT; check that node 0's port is reachable ({RDZV_TIMEOUT_ENV} sets the wait)",
    )
    print("\n".join(error_lines(error)), file=sys.stderr)
