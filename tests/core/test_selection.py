"""Backend selection as a table: (recipe changes, host, request) -> backend/device or the error."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args

import pytest

from aligntune.core.backends import BACKENDS, Tracker, image_tag
from aligntune.core.errors import BackendUnavailableError
from aligntune.core.loader import recipe_from_dict
from aligntune.core.plan import GpuInfo, HostInfo
from aligntune.core.selection import select_backend
from aligntune.core.version import VERSION

REPO = Path(__file__).resolve().parents[2]
H100 = GpuInfo("NVIDIA H100", 81559, "9.0")
CPU_HOST = HostInfo(docker_available=True, images=frozenset({image_tag("trl", "cpu")}))
GPU_HOST = HostInfo(
    gpus=(H100,),
    driver_version="580.1",
    docker_available=True,
    nvidia_runtime=True,
    images=frozenset({image_tag("trl", "cuda"), image_tag("unsloth", "cuda")}),
)
TWO_NODES = replace(GPU_HOST, nnodes=2)
GPU_NO_TOOLKIT = replace(GPU_HOST, nvidia_runtime=False)
NO_DOCKER = HostInfo(runner_packages=frozenset({"trl"}))
LOCAL_GPU_TRL_ONLY = HostInfo(gpus=(H100,), runner_packages=frozenset({"trl"}))
LOCAL_GPU_BOTH = HostInfo(gpus=(H100,), runner_packages=frozenset({"trl", "unsloth"}))

# (id, algorithm, recipe changes, host, requested backend, runtime, expected backend, device)
CASES: list[tuple[str, str, dict[str, Any], HostInfo, str | None, str, str, str]] = [
    ("cpu-auto-sft", "sft", {}, CPU_HOST, None, "docker", "trl", "cpu"),
    ("cpu-auto-grpo", "grpo", {}, CPU_HOST, None, "docker", "trl", "cpu"),
    ("cpu-explicit-trl", "dpo", {}, CPU_HOST, "trl", "docker", "trl", "cpu"),
    ("gpu-auto-sft", "sft", {}, GPU_HOST, None, "docker", "unsloth", "cuda"),
    ("gpu-auto-dpo", "dpo", {}, GPU_HOST, None, "docker", "unsloth", "cuda"),
    ("gpu-auto-dapo", "dapo", {}, GPU_HOST, None, "docker", "unsloth", "cuda"),
    ("gpu-auto-gspo-is-trl", "gspo", {}, GPU_HOST, None, "docker", "trl", "cuda"),
    ("gpu-explicit-trl", "sft", {}, GPU_HOST, "trl", "docker", "trl", "cuda"),
    ("gpu-recipe-says-trl", "sft", {"backend": "trl"}, GPU_HOST, None, "docker", "trl", "cuda"),
    ("gpu-two-nodes", "sft", {}, TWO_NODES, None, "docker", "trl", "cuda"),
    (
        "gpu-fsdp",
        "sft",
        {"distributed": {"strategy": "fsdp"}},
        GPU_HOST,
        None,
        "docker",
        "trl",
        "cuda",
    ),
    (
        "local-gpu-zero3",
        "sft",
        {"distributed": {"strategy": "deepspeed", "zero_stage": 3}},
        LOCAL_GPU_BOTH,
        None,
        "local",
        "trl",
        "cuda",
    ),
    (
        "local-gpu-zero2-ok-for-unsloth",
        "sft",
        {"distributed": {"strategy": "deepspeed", "zero_stage": 2}},
        LOCAL_GPU_BOTH,
        None,
        "local",
        "unsloth",
        "cuda",
    ),
    (
        "gpu-gpt2-arch",
        "sft",
        {"model": {"name_or_path": "microsoft/DialoGPT-small"}},
        GPU_HOST,
        None,
        "docker",
        "trl",
        "cuda",
    ),
    (
        "gpu-hub-llama",
        "sft",
        {"model": {"name_or_path": "unsloth/Llama-3.2-1B-Instruct-bnb-4bit"}},
        GPU_HOST,
        None,
        "docker",
        "unsloth",
        "cuda",
    ),
    (
        "gpu-arch-from-recipe",
        "sft",
        {"model": {"name_or_path": "acme/secret-model", "architecture": "mistral"}},
        GPU_HOST,
        None,
        "docker",
        "unsloth",
        "cuda",
    ),
    ("gpu-without-toolkit", "sft", {}, GPU_NO_TOOLKIT, None, "docker", "trl", "cpu"),
    ("local-gpu-unsloth-missing", "sft", {}, LOCAL_GPU_TRL_ONLY, None, "local", "trl", "cuda"),
    ("local-gpu-both", "sft", {}, LOCAL_GPU_BOTH, None, "local", "unsloth", "cuda"),
    ("cpu-explicit-unsloth-cpu-mode", "sft", {}, CPU_HOST, "unsloth", "docker", "unsloth", "cpu"),
    ("cpu-explicit-unsloth-ppo", "ppo", {}, CPU_HOST, "unsloth", "docker", "unsloth", "cpu"),
    (
        "gpu-qlora",
        "sft",
        {"model": {"name_or_path": "unsloth/Qwen3-0.6B", "quantization": "4bit"}},
        GPU_HOST,
        None,
        "docker",
        "unsloth",
        "cuda",
    ),
]


def _recipe(algorithm: str, changes: dict[str, Any], make_recipe):
    data = make_recipe(algorithm)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return recipe_from_dict(data)


@pytest.mark.parametrize(
    ("algorithm", "changes", "host", "requested", "runtime", "backend", "device"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_selection(algorithm, changes, host, requested, runtime, backend, device, make_recipe):
    plan = select_backend(
        _recipe(algorithm, changes, make_recipe), host, backend=requested, runtime=runtime
    )
    assert (plan.backend, plan.device) == (backend, device)
    assert plan.reasons, "a plan always says why"
    if runtime == "docker":
        assert plan.image == f"aligntune/{backend}-runner:{VERSION}-{device}"
    else:
        assert plan.image is None


ERRORS: list[tuple[str, str, dict[str, Any], HostInfo, str | None, str, str]] = [
    (
        "deepspeed-in-an-image",
        "sft",
        {"distributed": {"strategy": "deepspeed", "zero_stage": 2}},
        GPU_HOST,
        None,
        "docker",
        "no aligntune image includes the deepspeed package",
    ),
    (
        "unsloth-gspo",
        "gspo",
        {},
        GPU_HOST,
        "unsloth",
        "docker",
        "Unsloth does not support gspo; TRL",
    ),
    ("unsloth-two-nodes", "sft", {}, TWO_NODES, "unsloth", "docker", "one machine only"),
    (
        "unsloth-fsdp",
        "sft",
        {"distributed": {"strategy": "fsdp"}},
        GPU_HOST,
        "unsloth",
        "docker",
        "FSDP",
    ),
    (
        "unsloth-gpt2",
        "sft",
        {"model": {"name_or_path": "openai-community/gpt2", "architecture": "gpt2"}},
        GPU_HOST,
        "unsloth",
        "docker",
        "gpt2 architecture",
    ),
    (
        "unsloth-cpu-full-ft",
        "sft",
        {"model": {"name_or_path": "x/qwen2", "peft": {"method": "full"}}},
        CPU_HOST,
        "unsloth",
        "docker",
        "LoRA adapters only",
    ),
    (
        "qlora-on-cpu",
        "sft",
        {"model": {"name_or_path": "x/qwen2", "quantization": "4bit"}},
        CPU_HOST,
        None,
        "docker",
        "needs a CUDA GPU",
    ),
    (
        "fp16-on-cpu",
        "sft",
        {"training": {"precision": "fp16"}},
        CPU_HOST,
        None,
        "docker",
        "fp16 needs a CUDA GPU",
    ),
    ("no-docker-engine", "sft", {}, NO_DOCKER, None, "docker", "docker engine is not reachable"),
    ("local-runner-missing", "sft", {}, HostInfo(), "trl", "local", "trl runner is not installed"),
    ("unknown-backend", "sft", {}, CPU_HOST, "axolotl", "docker", "unknown backend 'axolotl'"),
]


@pytest.mark.parametrize(
    ("algorithm", "changes", "host", "requested", "runtime", "message"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_selection_errors(algorithm, changes, host, requested, runtime, message, make_recipe):
    with pytest.raises(BackendUnavailableError, match=message) as caught:
        select_backend(
            _recipe(algorithm, changes, make_recipe), host, backend=requested, runtime=runtime
        )
    assert caught.value.exit_code == 3


def test_auto_explains_every_reason_it_did_not_pick_unsloth(make_recipe) -> None:
    recipe = _recipe("gspo", {"distributed": {"strategy": "fsdp"}}, make_recipe)
    plan = select_backend(recipe, TWO_NODES)
    (why,) = [r for r in plan.reasons if r.startswith("auto chose TRL")]
    for part in ("does not support gspo", "2 nodes", "FSDP"):
        assert part in why


def test_a_missing_image_is_flagged_with_the_build_command(make_recipe) -> None:
    plan = select_backend(_recipe("sft", {}, make_recipe), replace(CPU_HOST, images=frozenset()))
    assert not plan.image_available
    assert any("aligntune images build trl-runner --device cpu" in w for w in plan.warnings)


def test_unsloth_cpu_mode_warns_and_names_the_cpu_image(make_recipe) -> None:
    plan = select_backend(_recipe("sft", {}, make_recipe), CPU_HOST, backend="unsloth")
    assert any("CPU mode" in w for w in plan.warnings)
    assert plan.image == f"aligntune/unsloth-runner:{VERSION}-cpu"
    assert any("aligntune images build unsloth-runner --device cpu" in w for w in plan.warnings)


def test_gpus_without_nvidia_runtime_warn(make_recipe) -> None:
    plan = select_backend(_recipe("sft", {}, make_recipe), GPU_NO_TOOLKIT)
    assert any("no nvidia runtime" in w for w in plan.warnings)


def test_unsloth_cpu_mode_is_refused_where_it_was_not_verified(make_recipe, monkeypatch) -> None:
    import aligntune.core.selection as selection

    real = selection.get_algorithm
    unverified = replace(real("dpo"), verified=MappingProxyType({"trl": ("cpu",)}))
    monkeypatch.setattr(selection, "get_algorithm", lambda n: unverified if n == "dpo" else real(n))
    with pytest.raises(BackendUnavailableError, match="CPU mode is not verified for dpo"):
        select_backend(_recipe("dpo", {}, make_recipe), CPU_HOST, backend="unsloth")


TRACKER_DISTRIBUTIONS = {
    "wandb": ("wandb",),
    "trackio": ("trackio",),
    "tensorboard": ("tensorboard", "tensorboardx"),
    "mlflow": ("mlflow", "mlflow-skinny"),
}
"""The pip distributions that give transformers each tracker's integration."""


@pytest.mark.parametrize("spec", BACKENDS, ids=lambda b: b.name)
def test_each_backend_lists_the_trackers_its_image_locks_install(spec) -> None:
    assert set(TRACKER_DISTRIBUTIONS) == set(get_args(Tracker))
    for device in spec.devices:
        lock = REPO / "images" / spec.image_name / f"requirements-{device}.lock"
        pinned = {line.split("==")[0].lower() for line in lock.read_text().splitlines()}
        installed = {t for t, dists in TRACKER_DISTRIBUTIONS.items() if pinned & set(dists)}
        assert installed == spec.trackers, f"{lock.name}: {sorted(installed)}"


def test_a_path_field_the_run_will_not_read_is_a_warning_of_every_plan(make_recipe) -> None:
    """Shown by plan and by run alike: the plan carries it."""
    recipe = _recipe(
        "sft", {"distributed": {"strategy": "ddp", "config_file": "ds.json"}}, make_recipe
    )
    plan = select_backend(recipe, CPU_HOST)
    assert any(
        w.startswith("distributed.config_file is ignored and not mounted") for w in plan.warnings
    )
