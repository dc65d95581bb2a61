"""The pure recipe -> TRL settings translation, and every shipped recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from aligntune.core.algorithms import ALGORITHM_NAMES, get_algorithm
from aligntune.core.errors import UserInputError
from aligntune.core.loader import load_recipe, recipe_from_dict
from aligntune.core.plan import GpuInfo, HostInfo
from aligntune.core.selection import select_backend
from aligntune.runners.common.settings import resolve_settings

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "recipes").glob("*.yaml")) + sorted((ROOT / "recipes/tiny").glob("*.yaml"))
CPU = HostInfo(runner_packages=frozenset({"trl"}))


def _settings(data: dict, host: HostInfo = CPU, bf16: bool = False) -> dict:
    recipe = recipe_from_dict(data)
    plan = select_backend(recipe, host, backend="trl", runtime="in-process")
    return resolve_settings(recipe, plan, "/tmp/out", bf16_supported=bf16).to_json()


def _group(name: str, **algorithm: object) -> dict:
    return {
        "algorithm": {"name": name, "num_generations": 4, **algorithm},
        "model": {"name_or_path": "Qwen/Qwen3-0.6B"},
        "data": {"train": {"path": "openai/gsm8k"}},
        "training": {"batch_size": 8},
        "rewards": [{"function": "numeric_match", "params": {"column": "answer"}}],
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.algorithm.name in ALGORITHM_NAMES
    assert path.read_text().startswith("# yaml-language-server: $schema=")


def test_every_algorithm_has_a_hub_recipe_and_a_tiny_one() -> None:
    for name in ALGORITHM_NAMES:
        assert (ROOT / "recipes" / f"{name}.yaml").is_file()
        assert (ROOT / "recipes" / "tiny" / f"{name}.yaml").is_file()


@pytest.mark.parametrize("name", ["grpo", "gspo", "dapo", "dr_grpo"])
def test_group_rl_settings_are_all_explicit(name: str) -> None:
    config = _settings(_group(name))["config_kwargs"]
    for key in (
        "loss_type",
        "importance_sampling_level",
        "beta",
        "epsilon",
        "epsilon_high",
        "scale_rewards",
        "mask_truncated_completions",
    ):
        assert config[key] is not None, key
    for key, value in get_algorithm(name).defining_settings.items():
        assert config[key] == value


def test_grpo_values_are_ours_not_trls_defaults() -> None:
    config = _settings(_group("grpo", beta=0.04, epsilon=0.1))["config_kwargs"]
    assert config["loss_type"] == "grpo"  # TRL 1.12 would use dapo
    assert (config["beta"], config["epsilon"], config["epsilon_high"]) == (0.04, 0.1, 0.1)
    assert config["scale_rewards"] == "group" and config["mask_truncated_completions"] is False


def test_gspo_on_policy_warns_that_it_equals_grpo() -> None:
    assert _settings(_group("gspo"))["warnings"]
    assert not _settings(_group("gspo", num_iterations=2))["warnings"]


def test_generation_batch_must_hold_whole_groups() -> None:
    data = _group("grpo")
    data["training"]["batch_size"] = 6
    with pytest.raises(UserInputError, match=r"training.batch_size \(6\).*num_generations \(4\)"):
        _settings(data)


def test_dpo_loss_type_and_precision() -> None:
    data = {
        "algorithm": {"name": "dpo", "beta": 0.3},
        "model": {"name_or_path": "Qwen/Qwen3-0.6B"},
        "data": {"train": {"path": "trl-lib/ultrafeedback_binarized"}},
    }
    cpu = _settings(data)
    assert cpu["config_kwargs"]["loss_type"] == ["sigmoid"] and cpu["config_kwargs"]["beta"] == 0.3
    assert cpu["model_init"]["dtype"] == "float32" and not cpu["config_kwargs"]["bf16"]
    gpu = _settings(
        data, HostInfo(gpus=(GpuInfo("H100"),), runner_packages=frozenset({"trl"})), bf16=True
    )
    assert gpu["config_kwargs"]["bf16"] and gpu["model_init"]["dtype"] == "bfloat16"
    assert gpu["peft"]["r"] == 16 and gpu["peft"]["target_modules"] == "all-linear"


def test_ppo_steps_become_episodes() -> None:
    data = {
        "algorithm": {"name": "ppo", "reward_model": "OpenAssistant/reward-model"},
        "model": {"name_or_path": "Qwen/Qwen3-0.6B"},
        "data": {"train": {"path": "trl-lib/prompts"}},
        "training": {"max_steps": 10, "batch_size": 4, "gradient_accumulation_steps": 2},
    }
    recipe = recipe_from_dict(data)
    plan = select_backend(recipe, CPU, backend="trl", runtime="in-process")
    settings = resolve_settings(recipe, plan, "/tmp/o", reward_model="rm", value_model=None)
    assert settings.config_kwargs["total_episodes"] == 80
    assert settings.models == {
        "policy": "Qwen/Qwen3-0.6B",
        "reward_model": "rm",
        "value_model": "rm",
    }


def test_kto_settings_are_explicit_and_its_defaults_are_trls() -> None:
    from trl import KTOConfig

    data = {
        "algorithm": {"name": "kto", "desirable_weight": 1.33},
        "model": {"name_or_path": "Qwen/Qwen3-0.6B"},
        "data": {"train": {"path": "trl-lib/kto-mix-14k"}, "max_length": 512},
    }
    config = _settings(data)["config_kwargs"]
    assert config["loss_type"] == "kto" and config["train_sampling_strategy"] == "sequential"
    assert (config["desirable_weight"], config["max_length"]) == (1.33, 512)
    trl_defaults = KTOConfig(output_dir="/tmp/o", use_cpu=True, bf16=False)
    unset = recipe_from_dict(data).algorithm
    for name in ("beta", "undesirable_weight"):
        assert config[name] == getattr(unset, name) == getattr(trl_defaults, name), name
    assert get_algorithm("kto").defining_settings["loss_type"] == trl_defaults.loss_type
