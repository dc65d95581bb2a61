"""The backend registry: one frozen record per training backend, as data.

Every other list of backends is derived from `BACKENDS`: the recipe's `backend` field, the plan,
image tags and repositories, build and install hints, `list-backends`, `diagnose` and the doc
tables (checked by tests/core/test_registries.py). Adding a backend is a record here plus its
runner package. Standard library only: the CLI's fastest paths import this module.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from aligntune.core.version import VERSION

BackendName = Literal["trl", "unsloth"]
"""A training backend's name, as recipes, plans and events spell it."""
BackendChoice = Literal["auto", BackendName]
"""What a recipe or command may ask for: a backend, or `auto` to let selection choose."""
Device = Literal["cpu", "cuda"]
"""Where training runs; each backend has one image per device."""
Tracker = Literal["tensorboard", "trackio", "wandb", "mlflow"]
"""An experiment tracker `training.report_to` may name."""


_FROZEN_EMPTY: MappingProxyType[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class BackendSpec:
    """What aligntune knows about one training backend."""

    name: BackendName
    title: str
    """The name people read in messages ("TRL")."""
    runner_module: str
    """The runner package's import name; `python -m` runs its command line."""
    runner_distribution: str
    """The runner's pip distribution, for install hints and the manifest."""
    requires: str
    """What the backend needs to train, in words (list-backends)."""
    devices: tuple[Device, ...] = ("cpu", "cuda")
    """Devices an image is built for (Unsloth's cpu image runs its CPU mode)."""
    needs_gpu: bool = False
    """`auto` picks it only with a usable CUDA GPU; on CPU it runs only when asked for by name,
    for the algorithms its CPU mode was verified on (the algorithm registry's `verified`)."""
    cpu_mode_lora_only: bool = False
    """Its CPU mode trains LoRA adapters only."""
    architectures: frozenset[str] | None = None
    """The model_type values it can load; None for any transformers causal LM."""
    multi_node: bool = True
    """Whether one run may span several machines."""
    full_sharding: bool = True
    """Whether it supports FSDP and DeepSpeed ZeRO-3 (parameters sharded across processes)."""
    auto_priority: int = 0
    """`auto` picks the runnable backend with the highest priority."""
    trackers: frozenset[Tracker] = frozenset({"tensorboard", "trackio"})
    """The experiment trackers its images install (the image locks; tests/core/test_selection.py
    checks them); `training.report_to` may name only those every image has."""
    changed_defaults: MappingProxyType[str, str] = field(default_factory=lambda: _FROZEN_EMPTY)
    """TRL settings whose defaults the backend changes when it patches TRL. aligntune writes every
    setting that defines an algorithm, so none of these applies; the runner reads them back."""

    @property
    def image_name(self) -> str:
        """The image's short name, as `aligntune images build` takes it."""
        return f"{self.name}-runner"

    @property
    def image_repository(self) -> str:
        """The image repository, without tag."""
        return f"aligntune/{self.image_name}"

    def image_tag(self, device: str) -> str:
        """The image tag for `device`, versioned with aligntune."""
        return f"{self.image_repository}:{VERSION}-{device}"

    def build_command(self, device: str) -> str:
        """The command that builds this backend's image for `device`."""
        return f"aligntune images build {self.image_name} --device {device}"

    def runner_installed(self) -> bool:
        """Whether the runner package can be imported here (found without importing it)."""
        try:
            return importlib.util.find_spec(self.runner_module) is not None
        except ModuleNotFoundError:  # its parent package is missing
            return False

    @property
    def install_command(self) -> str:
        """The command that installs the runner in the current Python environment."""
        return f"pip install {self.runner_distribution}"


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

BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec(
        name="trl",
        title="TRL",
        runner_module="aligntune.runners.trl",
        runner_distribution="aligntune-trl-runner",
        requires="CPU or CUDA",
    ),
    BackendSpec(
        name="unsloth",
        title="Unsloth",
        runner_module="aligntune.runners.unsloth",
        runner_distribution="aligntune-unsloth-runner",
        requires="CUDA GPU (CPU mode for LoRA)",
        needs_gpu=True,
        cpu_mode_lora_only=True,
        architectures=UNSLOTH_ARCHITECTURES,
        multi_node=False,
        full_sharding=False,
        auto_priority=1,
        changed_defaults=MappingProxyType(
            {
                "GRPOConfig.loss_type": "dapo (TRL >= 0.22; bnpo before)",
                "GRPOConfig.beta": "0.001 (0.0 with loss_type dapo or dr_grpo)",
                "GRPOConfig.mask_truncated_completions": "true with an explicit loss_type dapo",
                "GRPOConfig.epsilon_high": "0.28 with an explicit loss_type dapo",
                "GRPOConfig.scale_rewards": "false with loss_type dr_grpo",
                "SFTConfig.loss_type": "nll (TRL >= 1.7 uses chunked_nll)",
            }
        ),
    ),
)

BACKEND_NAMES: tuple[BackendName, ...] = tuple(b.name for b in BACKENDS)

if set(BACKEND_NAMES) != set(get_args(BackendName)):  # pragma: no cover - a registry typo
    raise RuntimeError(f"BackendName {get_args(BackendName)} != registry {BACKEND_NAMES}")


def get_backend(name: str) -> BackendSpec:
    """The registry record for `name`; KeyError names the valid ones."""
    for backend in BACKENDS:
        if backend.name == name:
            return backend
    raise KeyError(f"unknown backend {name!r}; valid: {', '.join(BACKEND_NAMES)}")


def backend_of_runner(module: str) -> BackendSpec:
    """The backend whose runner package is `module` (or a module inside it)."""
    for backend in BACKENDS:
        if module == backend.runner_module or module.startswith(f"{backend.runner_module}."):
            return backend
    raise KeyError(f"{module!r} is no runner module of {', '.join(BACKEND_NAMES)}")


def backend_of_image(image_name: str) -> BackendSpec:
    """The backend an image short name (`trl-runner`) or repository belongs to."""
    for backend in BACKENDS:
        if image_name in (backend.image_name, backend.image_repository):
            return backend
    raise KeyError(image_name)


def image_tag(backend: str, device: str) -> str:
    """The image tag for a backend and device."""
    return get_backend(backend).image_tag(device)
