"""Backend selection: a pure function from (Recipe, HostInfo) to a Plan, with reasons in words.

Core never probes the machine: the CLI (or the in-process API) describes the host in a HostInfo.
An explicit backend that cannot run is an error that says why; there is no silent fallback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from aligntune.core.algorithms import get_algorithm
from aligntune.core.data import is_local_path, resolve_local
from aligntune.core.errors import BackendUnavailableError, RunnerNotInstalledError
from aligntune.core.recipe import Recipe
from aligntune.core.version import VERSION

Runtime = Literal["docker", "local", "in-process"]

UNSLOTH_ARCHITECTURES = frozenset(
    {
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "gemma2",
        "gemma3",
        "gemma3_text",
        "phi3",
        "cohere",
        "granite",
        "gpt_oss",
    }
)
"""model_type values of the architectures Unsloth's FastLanguageModel supports."""

_HUB_NAME_HINTS = {
    "llama": "llama",
    "mistral": "mistral",
    "qwen3": "qwen3",
    "qwen2": "qwen2",
    "qwen": "qwen2",
    "gemma-3": "gemma3",
    "gemma-2": "gemma2",
    "gemma": "gemma",
    "phi-3": "phi3",
    "phi-4": "phi3",
    "granite": "granite",
    "gpt-oss": "gpt_oss",
}


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

    backend: Literal["trl", "unsloth"]
    device: Literal["cpu", "cuda"]
    runtime: Runtime
    image: str | None
    """The image the run uses (docker runtime)."""
    image_available: bool
    algorithm: str
    requested_backend: Literal["auto", "trl", "unsloth"]
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
            state = "present" if self.image_available else "not built"
            lines.append(f"image:     {self.image} ({state})")
        if self.nnodes > 1 or self.processes_per_node > 1:
            lines.append(f"processes: {self.nnodes} node(s) x {self.processes_per_node}")
        lines.extend(f"why:       {reason}" for reason in self.reasons)
        lines.extend(f"warning:   {warning}" for warning in self.warnings)
        return lines


def image_tag(backend: str, device: str) -> str:
    """The image tag for a backend and device (Unsloth's cpu image runs its CPU mode)."""
    return f"aligntune/{backend}-runner:{VERSION}-{device}"


def model_architecture(recipe: Recipe) -> tuple[str | None, str]:
    """The model's model_type and how it was found (recipe, config.json, or the hub id)."""
    if recipe.model.architecture:
        return recipe.model.architecture, "the recipe's model.architecture"
    reference = recipe.model.name_or_path
    if is_local_path(reference) or resolve_local(reference, recipe.base_dir).exists():
        config = resolve_local(reference, recipe.base_dir) / "config.json"
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError):
            return None, f"no readable {config}"
        return model_type, f"{Path(config).name} of {reference}"
    lowered = reference.lower()
    for hint, model_type in _HUB_NAME_HINTS.items():
        if hint in lowered:
            return model_type, f"the hub id {reference!r}"
    return None, f"the hub id {reference!r} names no known architecture"


def _unsloth_blockers(recipe: Recipe, host: HostInfo) -> list[str]:
    """Why Unsloth cannot run this recipe on this host at all (GPU aside)."""
    blockers = []
    algorithm = get_algorithm(recipe.algorithm.name)
    if "unsloth" not in algorithm.backends:
        blockers.append(f"Unsloth does not support {algorithm.name}; TRL does")
    if host.nnodes > 1:
        blockers.append(f"Unsloth runs on one machine only; this run has {host.nnodes} nodes")
    strategy = recipe.distributed
    if strategy.strategy == "fsdp":
        blockers.append("Unsloth does not support FSDP (only DDP)")
    if strategy.strategy == "deepspeed" and strategy.zero_stage == 3:
        blockers.append("Unsloth is incompatible with DeepSpeed ZeRO-3")
    if recipe.model.peft.method == "full" and recipe.model.quantization != "none":
        blockers.append("Unsloth needs LoRA for quantized models")
    return blockers


def _architecture_blocker(recipe: Recipe) -> str | None:
    model_type, source = model_architecture(recipe)
    if model_type is None:
        return (
            f"the model's architecture is unknown ({source}); "
            "set model.architecture to let Unsloth be considered"
        )
    if model_type not in UNSLOTH_ARCHITECTURES:
        return f"Unsloth does not support the {model_type} architecture (from {source})"
    return None


def _check_strategy_device(recipe: Recipe, device: str, runtime: Runtime) -> None:
    """DeepSpeed needs CUDA and is in no image yet; DDP and FSDP also run on CPU (gloo)."""
    if recipe.distributed.strategy != "deepspeed":
        return
    if device == "cpu":
        raise BackendUnavailableError(
            "distributed.strategy deepspeed needs CUDA GPUs (DeepSpeed ZeRO has no CPU training "
            "path in aligntune's images); none is usable here",
            hint="use distributed.strategy ddp or fsdp: both run on CPU with the gloo backend",
        )
    if runtime == "docker":
        raise BackendUnavailableError(
            "distributed.strategy deepspeed: no aligntune image includes the deepspeed package "
            "yet, so the run would fail after start",
            hint="use distributed.strategy fsdp (sharding like ZeRO-3) or ddp, or --runtime "
            "local in an environment with deepspeed installed",
        )


def _check_runtime(backend: str, runtime: Runtime, host: HostInfo) -> None:
    if runtime == "docker" and not host.docker_available:
        detail = f" ({host.notes[0]})" if host.notes else ""
        raise BackendUnavailableError(
            f"the docker engine is not reachable{detail}",
            hint="start it (see `aligntune diagnose`), or run with --runtime local",
        )
    if runtime != "docker" and backend not in host.runner_packages:
        raise RunnerNotInstalledError(
            f"the {backend} runner is not installed in this Python environment; "
            f"pip install aligntune-{backend}-runner",
            hint="or run in the backend's image: aligntune run --runtime docker",
        )


def select_backend(
    recipe: Recipe,
    host: HostInfo,
    *,
    backend: str | None = None,
    runtime: Runtime = "docker",
) -> Plan:
    """Choose backend, device and image for `recipe` on `host`; explain why in plain words."""
    requested = backend or recipe.backend
    if requested not in ("auto", "trl", "unsloth"):
        raise BackendUnavailableError(f"unknown backend {requested!r}; use auto, trl or unsloth")
    gpu_usable = bool(host.gpus) and (runtime != "docker" or host.nvidia_runtime)
    reasons: list[str] = []
    warnings: list[str] = []
    if host.gpus and not gpu_usable:
        warnings.append(
            f"{len(host.gpus)} GPU(s) found but docker has no nvidia runtime; containers get none"
        )
    blockers = _unsloth_blockers(recipe, host)
    arch_blocker = _architecture_blocker(recipe)

    if requested == "unsloth":
        chosen = _explicit_unsloth(recipe, host, gpu_usable, blockers, arch_blocker, reasons)
        if not gpu_usable:
            warnings.append(
                "no usable CUDA GPU: Unsloth runs in its CPU mode, far slower than on a GPU"
            )
    elif requested == "trl":
        chosen = "trl"
        reasons.append("backend trl was requested")
    else:
        chosen = _auto(host, gpu_usable, blockers, arch_blocker, runtime, reasons)

    device = "cuda" if gpu_usable else "cpu"
    if recipe.model.quantization != "none" and device == "cpu":
        raise BackendUnavailableError(
            f"model.quantization {recipe.model.quantization!r} (QLoRA) needs a CUDA GPU; "
            "none is usable here",
            hint="set model.quantization: none to train LoRA in full precision",
        )
    _check_strategy_device(recipe, device, runtime)
    _check_runtime(chosen, runtime, host)
    reasons.append(
        f"device {device}: "
        + (f"{len(host.gpus)} usable CUDA GPU(s)" if gpu_usable else "no usable CUDA GPU")
    )
    image = image_tag(chosen, device) if runtime == "docker" else None
    if image and image not in host.images:
        warnings.append(
            f"image {image} is not built: aligntune images build {chosen}-runner --device {device}"
        )
    return Plan(
        backend=chosen,
        device=device,
        runtime=runtime,
        image=image,
        image_available=image is None or image in host.images,
        algorithm=recipe.algorithm.name,
        requested_backend=requested,
        gpus=len(host.gpus) if gpu_usable else 0,
        nnodes=host.nnodes,
        processes_per_node=recipe.distributed.processes_per_node,
        reasons=reasons,
        warnings=warnings,
    )


def _explicit_unsloth(
    recipe: Recipe,
    host: HostInfo,
    gpu_usable: bool,
    blockers: list[str],
    arch_blocker: str | None,
    reasons: list[str],
) -> str:
    problems = [*blockers, *([arch_blocker] if arch_blocker else [])]
    algorithm = get_algorithm(recipe.algorithm.name)
    if not gpu_usable and "cpu" not in algorithm.verified.get("unsloth", ()):
        problems.append(
            f"no usable CUDA GPU, and Unsloth's CPU mode is not verified for {algorithm.name}"
        )
    if not gpu_usable and recipe.model.peft.method != "lora":
        problems.append("no usable CUDA GPU, and Unsloth's CPU mode trains LoRA adapters only")
    if problems:
        raise BackendUnavailableError(
            "backend unsloth cannot run this recipe here: " + "; ".join(problems),
            hint="use backend trl (or auto)",
        )
    reasons.append("backend unsloth was requested")
    return "unsloth"


def _auto(
    host: HostInfo,
    gpu_usable: bool,
    blockers: list[str],
    arch_blocker: str | None,
    runtime: Runtime,
    reasons: list[str],
) -> str:
    why_not = list(blockers)
    if not gpu_usable:
        why_not.insert(0, "Unsloth needs a usable CUDA GPU and there is none")
    if arch_blocker:
        why_not.append(arch_blocker)
    if runtime != "docker" and "unsloth" not in host.runner_packages:
        why_not.append("the unsloth runner is not installed here")
    if why_not:
        reasons.append("auto chose TRL: " + "; ".join(why_not))
        return "trl"
    reasons.append("auto chose Unsloth: a CUDA GPU is usable and it supports this recipe")
    return "unsloth"
