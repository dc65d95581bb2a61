"""The recipe loader: strict keys, every problem at once, with field paths and lines."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from aligntune.core.architectures import TARGET_MODULES
from aligntune.core.errors import RecipeError
from aligntune.core.loader import load_recipe, recipe_from_dict

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO / "recipes/tiny/model"


def problems_of(path: Path) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    return caught.value.problems


def test_shipped_tiny_recipes_load_with_paths_relative_to_their_folder() -> None:
    recipe = load_recipe(REPO / "recipes/tiny/sft.yaml")
    assert recipe.name == "tiny-sft"
    assert recipe.algorithm.name == "sft"
    assert recipe.base_dir == (REPO / "recipes/tiny").resolve()


def test_misspelt_keys_are_errors_with_a_suggestion_and_line(write_recipe, make_recipe) -> None:
    text = (
        "algorithm:\n  name: dpo\n  betta: 0.2\n"
        "model:\n  name_or_path: ./m\n"
        "data:\n  train: {path: d.jsonl}\n"
        "trainig:\n  max_steps: 3\n"
    )
    problems = problems_of(write_recipe(text))
    assert any(p.startswith("algorithm.betta: unknown key; did you mean 'beta'?") for p in problems)
    assert any("(line 3)" in p for p in problems if p.startswith("algorithm.betta"))
    assert any(p.startswith("trainig: unknown key; did you mean 'training'?") for p in problems)


def test_every_problem_is_listed_at_once(write_recipe) -> None:
    text = (
        "algorithm: {name: sft}\n"
        "model: {name_or_path: ./m, dtype: float8}\n"
        "data: {train: {path: d.jsonl, max_samples: 0}}\n"
        "training: {learning_rate: -1, batch_size: many}\n"
    )
    problems = problems_of(write_recipe(text))
    fields = sorted(p.split(":")[0] for p in problems)
    assert fields == [
        "data.train.max_samples",
        "model.dtype",
        "training.batch_size",
        "training.learning_rate",
    ]


def test_missing_required_sections_are_named(write_recipe) -> None:
    problems = problems_of(write_recipe("algorithm: {name: sft}\n"))
    assert "model: required field is missing (line 1)" not in problems
    assert any(p.startswith("model: required field is missing") for p in problems)
    assert any(p.startswith("data: required field is missing") for p in problems)


def test_unknown_algorithm_lists_the_valid_ones(write_recipe, make_recipe) -> None:
    recipe = make_recipe()
    recipe["algorithm"] = {"name": "ppo2"}
    problems = problems_of(write_recipe(recipe))
    assert len(problems) == 1
    assert problems[0].startswith("algorithm:")
    for name in ("'sft'", "'dpo'", "'gspo'", "'dr_grpo'"):
        assert name in problems[0]


def test_yaml_syntax_error_names_the_line(write_recipe) -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(write_recipe("algorithm:\n  name: sft\n model: [unclosed\n"))
    assert caught.value.source.endswith("recipe.yaml:3")
    assert "YAML syntax error" in caught.value.problems[0]


def test_a_file_that_is_not_a_mapping_is_rejected(write_recipe) -> None:
    assert "got a list" in problems_of(write_recipe("- sft\n- dpo\n"))[0]
    assert "got an empty file" in problems_of(write_recipe(""))[0]


def test_defining_settings_cannot_be_changed(make_recipe) -> None:
    recipe = make_recipe("dapo")
    recipe["algorithm"]["loss_type"] = "grpo"
    recipe["algorithm"]["epsilon_high"] = 0.28
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(recipe)
    (problem,) = caught.value.problems
    assert "loss_type='grpo' (defined as 'dapo')" in problem
    assert "epsilon_high" not in problem


def test_group_algorithms_need_rewards_and_others_refuse_them(make_recipe) -> None:
    grpo = make_recipe("grpo")
    grpo["rewards"] = []
    with pytest.raises(RecipeError, match="grpo needs at least one reward"):
        recipe_from_dict(grpo)
    sft = make_recipe("sft", rewards=[{"function": "contains", "params": {"text": "x"}}])
    with pytest.raises(RecipeError, match="sft does not use reward functions"):
        recipe_from_dict(sft)


def test_reward_entries_are_checked(make_recipe) -> None:
    recipe = make_recipe("grpo")
    recipe["rewards"] = [
        {"function": "exact_match", "params": {"colum": "answer"}},
        {"function": "format_regex"},
        {"function": "format_regex", "params": {"pattern": "(unclosed"}},
        {"function": "not a reference"},
        {"function": "my_rewards:score", "weight": 2.0},
    ]
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(recipe)
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "rewards.0",
        "rewards.1",
        "rewards.2",
        "rewards.3",
    ]
    assert "it takes column, strip" in problems[0]
    assert "needs parameter(s) pattern" in problems[1]


def test_qlora_needs_lora_and_ppo_needs_one_reward_model(make_recipe) -> None:
    recipe = make_recipe(
        model={"name_or_path": "x/y", "quantization": "4bit", "peft": {"method": "full"}}
    )
    with pytest.raises(RecipeError, match=r"needs peft\.method 'lora'"):
        recipe_from_dict(recipe)
    ppo = make_recipe("ppo")
    del ppo["algorithm"]["reward_model"]
    with pytest.raises(RecipeError, match="set exactly one of reward_model"):
        recipe_from_dict(ppo)


def test_column_mapping_keys_must_be_canonical(make_recipe) -> None:
    recipe = make_recipe()
    recipe["data"]["train"]["columns"] = {"question": "prompt"}
    with pytest.raises(RecipeError, match="unknown column name"):
        recipe_from_dict(recipe)


def test_name_defaults_to_the_file_name(write_recipe, make_recipe) -> None:
    assert load_recipe(write_recipe(make_recipe(), name="my run.yaml")).name == "my-run"


# --- the YAML itself ---------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_in_well_under_a_second(write_recipe, make_recipe) -> None:
    laughs = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    pairs = zip("abcdefgh", "bcdefghi", strict=True)
    laughs += [f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in pairs]
    path = write_recipe(yaml.safe_dump(make_recipe()) + "\n".join(laughs) + "\n")
    start = time.perf_counter()
    problems = problems_of(path)
    assert time.perf_counter() - start < 0.5
    assert "aliases repeat this value to more than 10000 values" in problems[0]


def test_aliases_that_repeat_a_little_are_fine(write_recipe) -> None:
    text = (
        f"algorithm: {{name: sft}}\nmodel: {{name_or_path: {TINY_MODEL}}}\n"
        f"data:\n  train: &rows {{path: {REPO / 'recipes/tiny/data/sft.jsonl'}}}\n  eval: *rows\n"
    )
    recipe = load_recipe(write_recipe(text))
    assert recipe.data.eval is not None
    assert recipe.data.eval.path == recipe.data.train.path


def test_a_duplicate_key_names_both_lines(write_recipe) -> None:
    text = (
        "algorithm: {name: sft}\nmodel: {name_or_path: ./a}\ndata: {}\nmodel: {name_or_path: ./b}\n"
    )
    with pytest.raises(RecipeError) as caught:
        load_recipe(write_recipe(text))
    assert caught.value.source.endswith("recipe.yaml:4")
    assert caught.value.problems == [
        "duplicate key 'model', first on line 2; YAML would silently keep only this one"
    ]


def test_exponent_numbers_are_numbers_and_booleans_are_not(write_recipe, make_recipe) -> None:
    text = yaml.safe_dump(make_recipe("dpo")).replace("max_steps: 2", "learning_rate: 1e-5")
    recipe = load_recipe(write_recipe(text.replace("name: dpo", "name: dpo\n  beta: 5E-2")))
    assert (recipe.training.learning_rate, recipe.algorithm.beta) == (1e-5, 0.05)
    for field, value in (("max_steps", True), ("learning_rate", False), ("epochs", "2")):
        with pytest.raises(RecipeError, match=rf"training\.{field}: Input should be a valid"):
            recipe_from_dict(make_recipe(training={field: value}))


def test_seed_takes_every_32_bit_value(make_recipe) -> None:
    for seed in (0, 2**32 - 1):
        assert recipe_from_dict(make_recipe(training={"seed": seed})).training.seed == seed
    with pytest.raises(RecipeError, match=r"training\.seed"):
        recipe_from_dict(make_recipe(training={"seed": 2**32}))


# --- LoRA target modules and the model's architecture ----------------------------------------


def _model_folder(tmp_path: Path, model_type: str) -> str:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}), encoding="utf-8")
    return str(folder)


def _lora(make_recipe, model: str, modules: list[str]) -> dict:
    return make_recipe(model={"name_or_path": model, "peft": {"target_modules": modules}})


def test_target_modules_are_checked_against_a_known_architecture(tmp_path, make_recipe) -> None:
    recipe = _lora(make_recipe, _model_folder(tmp_path, "gpt2"), ["c_attn", "q_proj"])
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(recipe)
    (problem,) = caught.value.problems
    assert "no module 'q_proj'" in problem
    assert "valid: c_attn, c_fc, c_proj, lm_head, wpe, wte" in problem


def test_target_modules_match_by_their_last_part(tiny_model, make_recipe) -> None:
    recipe = recipe_from_dict(_lora(make_recipe, str(tiny_model), ["self_attn.q_proj", "v_proj"]))
    assert recipe.model.peft.target_modules == ["self_attn.q_proj", "v_proj"]


def test_unknown_architectures_and_full_fine_tuning_are_not_checked(tmp_path, make_recipe) -> None:
    recipe_from_dict(_lora(make_recipe, _model_folder(tmp_path, "mamba"), ["in_proj"]))
    full = _lora(make_recipe, str(TINY_MODEL), ["c_attn"])
    full["model"]["peft"]["method"] = "full"
    recipe_from_dict(full)


@pytest.mark.parametrize("model_type", sorted(TARGET_MODULES))
def test_target_module_table_matches_transformers(model_type: str) -> None:
    """Every name in the table is a module the architecture's modeling file creates."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("transformers is not installed")
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    folder = model_type if (models / model_type).is_dir() else model_type.rsplit("_", 1)[0]
    source = (models / folder / f"modeling_{folder}.py").read_text(encoding="utf-8")
    missing = [n for n in TARGET_MODULES[model_type] if not re.search(rf"self\.{n} = ", source)]
    assert missing == []
