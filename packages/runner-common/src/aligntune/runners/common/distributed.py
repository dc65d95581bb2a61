"""Many processes, one run: start the worker group through torchrun; what the workers share.

Launcher half: when a recipe asks for more than one process (distributed.processes_per_node > 1,
or NNODES > 1) and this process is not already a worker, the runner hands its own command line to
torchrun (`torch.distributed.run`, in-process, so the worker group's exit codes come back) and
returns the workers' exit code. Worker half: rank 0 alone writes the run directory; all ranks
agree on when to stop; one decision made by rank 0 is shared with the others.

torch is imported only inside functions: the Unsloth runner must import unsloth before it.
"""

from __future__ import annotations

import os
import shlex
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from aligntune.core.errors import (
    BackendUnavailableError,
    ExitCode,
    UsageError,
    error_lines,
    signal_exit_code,
)
from aligntune.core.paths import reference_arguments
from aligntune.core.recipe import Recipe
from aligntune.core.rundir import RunDirectory

WORKER_ENV = ("LOCAL_RANK", "WORLD_SIZE")
"""Set by torchrun (and accelerate) in each worker: their presence means "already a worker"."""
RDZV_TIMEOUT_ENV = "ALIGNTUNE_RDZV_TIMEOUT"
DEFAULT_RDZV_TIMEOUT_S = 300
"""How long nodes wait for each other before giving up with a message (not a hang)."""
SHUTDOWN_TIMEOUT_S = 110
"""How long torchrun lets stopping workers save their checkpoint; under the CLI's 120 s."""
DEFAULT_PORT = 29500

T = TypeVar("T")


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


def worker_group(recipe: Recipe, env: Mapping[str, str] = os.environ) -> WorkerGroup | None:
    """The group to start, or None when one process trains (or this already is a worker)."""
    if is_worker(env):
        return None
    nnodes = _env_int(env, "NNODES", 1)
    per_node = recipe.distributed.processes_per_node
    if nnodes <= 1 and per_node <= 1:
        return None
    node_rank = _env_int(env, "NODE_RANK", 0)
    if nnodes < 1 or not 0 <= node_rank < nnodes:
        raise UsageError(
            f"NODE_RANK={node_rank} does not fit NNODES={nnodes} "
            "(ranks count from 0: the first node is 0, the last NNODES-1)"
        )
    address = env.get("MASTER_ADDR") or None
    if nnodes > 1 and address is None:
        raise UsageError(
            f"NNODES={nnodes} needs MASTER_ADDR: node 0's host name or IP, the same on every node"
        )
    return WorkerGroup(
        nnodes=nnodes,
        node_rank=node_rank,
        processes_per_node=per_node,
        master_addr=address,
        master_port=_env_int(env, "MASTER_PORT", DEFAULT_PORT),
        rdzv_timeout_s=_env_int(env, RDZV_TIMEOUT_ENV, DEFAULT_RDZV_TIMEOUT_S),
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
        # torchrun passed the signal on and waited for the workers to save and stop.
        return signal_exit_code(int(exc.sigval))
    except Exception as exc:  # rendezvous and store errors: one clear message, never a hang
        report_rendezvous_failure(group, exc)
        return ExitCode.UNAVAILABLE
    return ExitCode.OK


def launch_run(
    group: WorkerGroup,
    backend: str,
    recipe: Path,
    output: Path | None,
    mode: str,
    references: Mapping[str, str] | None = None,
) -> int:
    """Start the worker group on `python -m aligntune.runners.<backend> run ...`; its exit code."""
    args = ["run", str(recipe.resolve())]
    if output is not None:
        args += ["--output", str(output.resolve())]
    if mode != "auto":
        args.append(f"--{mode}")
    args += reference_arguments(references or {})
    return launch_workers(group, f"aligntune.runners.{backend}", args)


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


# --- worker half ---------------------------------------------------------------------------


def rank(env: Mapping[str, str] = os.environ) -> int:
    """This process's global rank (0 when not distributed)."""
    return int(env.get("RANK", "0") or 0)


def world_size(env: Mapping[str, str] = os.environ) -> int:
    """Processes in the job (1 when not distributed)."""
    return int(env.get("WORLD_SIZE", "1") or 1)


def is_rank_zero() -> bool:
    """Whether this process writes the run directory."""
    return rank() == 0


def ddp_backend(device: str) -> str:
    """gloo on CPU, nccl on CUDA."""
    return "nccl" if device == "cuda" else "gloo"


def trainer_kwargs(device: str) -> dict[str, Any]:
    """TrainingArguments for a worker: the process-group backend, said explicitly."""
    if world_size() <= 1:
        return {}
    return {"ddp_backend": ddp_backend(device)}


def init_worker(device: str) -> None:
    """Join the process group before anything else, so rank 0 can decide for all (no-op alone)."""
    if world_size() <= 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if device == "cpu":
        # accelerate's MULTI_CPU state picks torch.device("cpu", local_rank % 1), i.e. "cpu:0",
        # and transformers then resumes the optimizer with torch.load(map_location="cpu:0"),
        # which torch cannot restore ("don't know how to restore data location"): a stopped
        # multi-process CPU run could not resume. A plain "cpu" device avoids it; drop this
        # once accelerate gives MULTI_CPU the plain cpu device.
        os.environ.setdefault("ACCELERATE_TORCH_DEVICE", "cpu")
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = timedelta(seconds=_env_int(os.environ, RDZV_TIMEOUT_ENV, DEFAULT_RDZV_TIMEOUT_S))
    dist.init_process_group(backend=ddp_backend(device), timeout=timeout)


def _group_ready() -> bool:
    if world_size() <= 1:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every rank (no-op alone)."""
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()


def agree_to_stop(interrupt: Any) -> bool:
    """Whether any rank was asked to stop; if so every rank records it: all save the same step."""
    if not _group_ready():
        return bool(interrupt.requested)
    import torch
    import torch.distributed as dist

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    signum = torch.tensor([interrupt.signum or 0], device=device)
    dist.all_reduce(signum, op=dist.ReduceOp.MAX)
    if int(signum.item()) and not interrupt.requested:
        interrupt.request(int(signum.item()))
    return bool(signum.item())


def on_rank_zero(decide: Callable[[], T]) -> T:
    """Run `decide` on rank 0 only; every rank gets its result (or raises its error)."""
    if not _group_ready():
        return decide()
    import torch.distributed as dist

    box: list[Any] = [None]
    if is_rank_zero():
        try:
            box[0] = ("ok", decide())
        except Exception as exc:
            box[0] = ("error", exc)
    dist.broadcast_object_list(box, src=0)
    outcome, value = box[0]
    if outcome == "error":
        raise value
    return value


def gather(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order (just `[value]` alone)."""
    if not _group_ready():
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def first_batch_indices(dataloader: Any) -> list[int] | None:
    """The dataset rows this rank's first batch holds (from its batch sampler; loads no data)."""
    sampler = getattr(dataloader, "batch_sampler", None)
    if sampler is None:
        return None
    import torch

    # Peeking must not move the RNG that training draws its data order from.
    with torch.random.fork_rng(devices=[]):
        try:
            return [int(i) for i in next(iter(sampler))]
        except (StopIteration, TypeError):
            return None


def start_fields(dataloader: Any) -> dict[str, Any]:
    """For the start event: world size, backend, each rank's first-batch rows (collective)."""
    if not _group_ready():
        return {}
    import torch.distributed as dist

    return {
        "world_size": dist.get_world_size(),
        "ddp_backend": dist.get_backend(),
        "first_batch_rows": gather(first_batch_indices(dataloader)),
    }


class ReadOnlyRunDirectory(RunDirectory):
    """The run directory as a rank other than 0 sees it: it reads, and writes nothing."""

    def write_json(self, path: Any, data: Any) -> None:
        """Rank 0 writes it."""

    def write_recipe(self, data: dict[str, Any]) -> None:
        """Rank 0 writes it."""

    def append_event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Rank 0 writes events; the others' would duplicate every line."""
        return {"event": kind, **fields}


def for_this_rank(run_dir: RunDirectory) -> RunDirectory:
    """`run_dir` on rank 0; a read-only view of it on the other ranks."""
    return run_dir if is_rank_zero() else ReadOnlyRunDirectory(run_dir.root)
