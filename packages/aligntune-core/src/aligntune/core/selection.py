"""Backend selection: a pure function from (Recipe, HostInfo) to a Plan, with reasons in words.

Core never probes the machine: the CLI (or the in-process API) describes the host in a HostInfo.
An explicit backend that cannot run is an error that says why; there is no silent fallback.
"""

from __future__ import annotations

import json
from pathlib import Path

from aligntune.core.algorithms import get_algorithm
from aligntune.core.backends import (
    BACKEND_NAMES,
    BACKENDS,
    BackendSpec,
    Device,
    get_backend,
)
from aligntune.core.errors import BackendUnavailableError, RunnerNotInstalledError
from aligntune.core.images import PullPolicy, choose_image
from aligntune.core.paths import ignored_field_warnings, local_path
from aligntune.core.plan import HostInfo, Plan, Runtime
from aligntune.core.recipe import Recipe

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


def model_architecture(recipe: Recipe) -> tuple[str | None, str]:
    """The model's model_type and how it was found (recipe, config.json, or the hub id)."""
    if recipe.model.architecture:
        return recipe.model.architecture, "the recipe's model.architecture"
    reference = recipe.model.name_or_path
    folder = local_path(reference, recipe.base_dir)
    if folder is not None:
        config = folder / "config.json"
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


def backend_blockers(spec: BackendSpec, recipe: Recipe, host: HostInfo) -> list[str]:
    """Why `spec` cannot run this recipe on this host at all (the GPU aside)."""
    blockers = []
    algorithm = get_algorithm(recipe.algorithm.name)
    if spec.name not in algorithm.backends:
        others = ", ".join(get_backend(b).title for b in algorithm.backends)
        blockers.append(f"{spec.title} does not support {algorithm.name}; {others} does")
    if host.nnodes > 1 and not spec.multi_node:
        blockers.append(f"{spec.title} runs on one machine only; this run has {host.nnodes} nodes")
    strategy = recipe.distributed
    if not spec.full_sharding and strategy.strategy == "fsdp":
        blockers.append(f"{spec.title} does not support FSDP (only DDP)")
    if not spec.full_sharding and strategy.strategy == "deepspeed" and strategy.zero_stage == 3:
        blockers.append(f"{spec.title} is incompatible with DeepSpeed ZeRO-3")
    architecture = _architecture_blocker(spec, recipe)
    if architecture:
        blockers.append(architecture)
    return blockers


def _architecture_blocker(spec: BackendSpec, recipe: Recipe) -> str | None:
    if spec.architectures is None:
        return None
    model_type, source = model_architecture(recipe)
    if model_type is None:
        return (
            f"the model's architecture is unknown ({source}); "
            f"set model.architecture to let {spec.title} be considered"
        )
    if model_type not in spec.architectures:
        return f"{spec.title} does not support the {model_type} architecture (from {source})"
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
            f"{get_backend(backend).install_command}",
            hint="or run in the backend's image: aligntune run --runtime docker",
        )


def select_backend(
    recipe: Recipe,
    host: HostInfo,
    *,
    backend: str | None = None,
    runtime: Runtime = "docker",
    pull: PullPolicy = "missing",
) -> Plan:
    """Choose backend, device and image for `recipe` on `host`; explain why in plain words."""
    requested = backend or recipe.backend
    if requested != "auto" and requested not in BACKEND_NAMES:
        raise BackendUnavailableError(
            f"unknown backend {requested!r}; use auto, {', '.join(BACKEND_NAMES)}"
        )
    gpu_usable = bool(host.gpus) and (runtime != "docker" or host.nvidia_runtime)
    reasons: list[str] = []
    warnings = ignored_field_warnings(recipe)
    if host.gpus and not gpu_usable:
        warnings.append(
            f"{len(host.gpus)} GPU(s) found but docker has no nvidia runtime; containers get none"
        )
    if requested == "auto":
        chosen = _auto(recipe, host, gpu_usable, runtime, reasons)
    else:
        chosen = _explicit(get_backend(requested), recipe, host, gpu_usable, reasons, warnings)
    device: Device = "cuda" if gpu_usable else "cpu"
    if recipe.model.quantization != "none" and device == "cpu":
        raise BackendUnavailableError(
            f"model.quantization {recipe.model.quantization!r} (QLoRA) needs a CUDA GPU; "
            "none is usable here",
            hint="set model.quantization: none to train LoRA in full precision",
        )
    _check_strategy_device(recipe, device, runtime)
    if recipe.training.precision == "fp16" and device == "cpu":
        raise BackendUnavailableError(
            "training.precision fp16 needs a CUDA GPU; none is usable here",
            hint="use training.precision fp32 or bf16 (or auto) on CPU",
        )
    _check_runtime(chosen.name, runtime, host)
    reasons.append(
        f"device {device}: "
        + (f"{len(host.gpus)} usable CUDA GPU(s)" if gpu_usable else "no usable CUDA GPU")
    )
    image = choose_image(chosen, device, host.images, pull) if runtime == "docker" else None
    if image:
        reasons.append(image.why)
        if image.source == "local build" and not image.present:
            warnings.append(f"image {image.reference} is not built: {chosen.build_command(device)}")
    return Plan(
        backend=chosen.name,
        device=device,
        runtime=runtime,
        image=image and image.reference,
        image_available=image is None or image.present,
        image_source=image and image.source,
        image_pull=bool(image and image.pull),
        image_download_bytes=image and image.download_bytes,
        algorithm=recipe.algorithm.name,
        requested_backend=requested,
        gpus=len(host.gpus) if gpu_usable else 0,
        nnodes=host.nnodes,
        processes_per_node=recipe.distributed.processes_per_node,
        reasons=reasons,
        warnings=warnings,
    )


def _explicit(
    spec: BackendSpec,
    recipe: Recipe,
    host: HostInfo,
    gpu_usable: bool,
    reasons: list[str],
    warnings: list[str],
) -> BackendSpec:
    """A backend asked for by name: it runs, or the error lists every reason it cannot."""
    problems = []
    if spec.needs_gpu and not gpu_usable:
        problems.extend(_cpu_mode_problems(spec, recipe))
        warnings.append(
            f"no usable CUDA GPU: {spec.title} runs in its CPU mode, far slower than on a GPU"
        )
    check_backend(spec, recipe, host, problems)
    reasons.append(f"backend {spec.name} was requested")
    return spec


def check_backend(
    spec: BackendSpec, recipe: Recipe, host: HostInfo, more: list[str] | None = None
) -> None:
    """Refuse `spec` for this recipe, naming every reason (`backend_blockers`, then `more`).
    A runner calls it before its training stack loads: it needs no GPU and no import."""
    problems = [*backend_blockers(spec, recipe, host), *(more or [])]
    if problems:
        raise BackendUnavailableError(
            f"backend {spec.name} cannot run this recipe here: " + "; ".join(problems),
            hint="use another backend (or auto)",
        )


def _cpu_mode_problems(spec: BackendSpec, recipe: Recipe) -> list[str]:
    algorithm = get_algorithm(recipe.algorithm.name)
    problems = []
    if "cpu" not in algorithm.verified.get(spec.name, ()):
        problems.append(
            f"no usable CUDA GPU, and {spec.title}'s CPU mode is not verified for {algorithm.name}"
        )
    if spec.cpu_mode_lora_only and recipe.model.peft.method != "lora":
        problems.append(
            f"no usable CUDA GPU, and {spec.title}'s CPU mode trains LoRA adapters only"
        )
    return problems


def _auto(
    recipe: Recipe, host: HostInfo, gpu_usable: bool, runtime: Runtime, reasons: list[str]
) -> BackendSpec:
    """The runnable backend with the highest priority; the reasons say why each better one lost."""
    passed_over: list[str] = []
    candidates = sorted(BACKENDS, key=lambda b: -b.auto_priority)
    for spec in candidates:
        why_not = backend_blockers(spec, recipe, host)
        if spec.needs_gpu and not gpu_usable:
            why_not.insert(0, f"{spec.title} needs a usable CUDA GPU and there is none")
        # The last resort's missing runner is not a reason to pass it over: the runtime check
        # then says how to install it.
        missing = runtime != "docker" and spec.name not in host.runner_packages
        if missing and spec is not candidates[-1]:
            why_not.append(f"the {spec.name} runner is not installed here")
        if not why_not:
            if passed_over:
                reasons.append(f"auto chose {spec.title}: " + "; ".join(passed_over))
            else:
                reasons.append(
                    f"auto chose {spec.title}: "
                    + ("a CUDA GPU is usable and " if spec.needs_gpu else "")
                    + "it supports this recipe"
                )
            return spec
        passed_over.extend(why_not)
    raise BackendUnavailableError("no backend can run this recipe here: " + "; ".join(passed_over))
