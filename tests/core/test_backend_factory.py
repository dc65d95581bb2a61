"""The in-process API builds the same Recipe as a YAML file would, and imports runners lazily."""

from __future__ import annotations

import pytest

from aligntune.core.backend_factory import (
    BackendType,
    create_rl_trainer,
    create_sft_trainer,
    list_backends,
)
from aligntune.core.backends import BackendSpec
from aligntune.core.errors import RecipeError, RunnerNotInstalledError
from aligntune.runners.common import api


@pytest.fixture
def captured(monkeypatch):
    """Stop at the runner seam and keep what create_trainer_from_recipe was given."""
    seen = {}

    def fake(recipe, backend=None, reward_callables=None):
        seen.update(recipe=recipe, backend=backend, callables=reward_callables)
        return "trainer"

    monkeypatch.setattr(api, "create_trainer_from_recipe", fake)
    return seen


def test_sft_arguments_map_onto_recipe_fields(captured, tiny_model) -> None:
    result = create_sft_trainer(
        model_name=str(tiny_model),
        dataset_name="tatsu-lab/alpaca",
        backend="trl",
        num_epochs=2,
        max_samples=100,
        lora_r=4,
        seed=7,
        packing=True,
    )
    recipe = captured["recipe"]
    assert result == "trainer"
    assert recipe.backend == "trl"
    assert recipe.training.epochs == 2 and recipe.training.seed == 7
    assert recipe.data.train.max_samples == 100 and recipe.data.max_length == 512
    assert recipe.model.peft.r == 4 and recipe.algorithm.packing is True
    assert recipe.output.dir == "./output"


def test_unknown_keyword_arguments_are_errors_with_a_suggestion(captured) -> None:
    with pytest.raises(RecipeError) as caught:
        create_sft_trainer("m/x", "d/y", lora_rank=8)
    assert caught.value.problems == ["lora_rank: unknown keyword argument; did you mean 'lora_r'?"]


def test_rl_rewards_accept_names_and_callables(captured) -> None:
    def shout(completions, **kwargs):
        return [float(c.isupper()) for c in completions]

    create_rl_trainer(
        "m/qwen2",
        "d/math",
        algorithm="dr_grpo",
        reward_functions=["numeric_match", shout],
        reward_function_weights=[1.0, 0.5],
        num_generations=4,
    )
    recipe = captured["recipe"]
    assert [r.function for r in recipe.rewards] == ["numeric_match", f"{__name__}:shout"]
    assert [r.weight for r in recipe.rewards] == [1.0, 0.5]
    assert captured["callables"] == {f"{__name__}:shout": shout}
    assert recipe.algorithm.num_generations == 4


def test_rl_weights_must_match_and_sft_is_refused(captured) -> None:
    with pytest.raises(RecipeError, match="2 weights for 1 reward functions"):
        create_rl_trainer(
            "m/x", "d/y", "grpo", reward_functions=["contains"], reward_function_weights=[1, 2]
        )
    with pytest.raises(RecipeError, match="use create_sft_trainer"):
        create_rl_trainer("m/x", "d/y", "sft")


def test_ppo_takes_the_reward_model(captured) -> None:
    create_rl_trainer("m/x", "d/y", "ppo", reward_model_path="./rm")
    assert captured["recipe"].algorithm.reward_model == "./rm"


def test_a_missing_runner_is_an_import_error_naming_the_package(monkeypatch, tiny_model) -> None:
    monkeypatch.setattr(BackendSpec, "runner_installed", lambda self: False)
    with pytest.raises(ImportError, match="pip install aligntune-trl-runner") as caught:
        create_sft_trainer(str(tiny_model), "d/y", backend=BackendType.TRL)
    assert isinstance(caught.value, RunnerNotInstalledError)


def test_list_backends_is_the_support_matrix() -> None:
    rows = {row["backend"]: row for row in list_backends()}
    assert "gspo" in rows["trl"]["algorithms"] and "gspo" not in rows["unsloth"]["algorithms"]
    assert set(rows["trl"]["algorithms"]) == {
        "sft",
        "dpo",
        "kto",
        "ppo",
        "grpo",
        "gspo",
        "dapo",
        "dr_grpo",
    }


def test_the_seed_docs_fallback_pattern_works() -> None:
    """`except ImportError:` around an Unsloth request that cannot run here, then TRL."""
    try:
        create_sft_trainer(
            model_name="microsoft/DialoGPT-small",
            dataset_name="tatsu-lab/alpaca",
            backend="unsloth",
        )
    except ImportError as exc:
        message = str(exc)
    else:
        pytest.fail("an Unsloth request for a gpt2-family hub model must not go ahead")
    assert "backend unsloth cannot run this recipe here" in message
