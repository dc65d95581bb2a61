"""Many processes, one run: what the workers of a group share.

Rank 0 alone writes the run directory; all ranks agree on when to stop; one decision made by
rank 0 is shared with the others. Starting the group is `torchrun`'s part.

torch is imported only inside functions: the Unsloth runner must import unsloth before it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from aligntune.core.rundir import RunDirectory
from aligntune.runners.common.torchrun import rendezvous_timeout_s

T = TypeVar("T")


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
    timeout = timedelta(seconds=rendezvous_timeout_s())
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
