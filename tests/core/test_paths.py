"""The path model: which recipe fields are local inputs, re-rooting them, the resolved recipe."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from aligntune.core.errors import UsageError
from aligntune.core.loader import load_recipe
from aligntune.core.paths import (
    PATH_RULE,
    recorded_model,
    renamed_paths,
    resolved_recipe,
    unread_references,
    unsafe_references,
)
from aligntune.core.recipe import Recipe

RecipeWriter = Callable[..., Path]


def ppo_recipe(**algorithm: Any) -> dict[str, Any]:
    """A PPO recipe naming every kind of input: model, data, eval, models, DeepSpeed config."""
    return {
        "algorithm": {"name": "ppo", **algorithm},
        "model": {"name_or_path": "./model"},
        "data": {"train": {"path": "data/train.jsonl"}, "eval": {"path": "../eval.csv"}},
        "distributed": {"strategy": "deepspeed", "config_file": "./ds.json"},
    }


def test_every_local_input_is_listed_absolute(write_recipe: RecipeWriter, tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(ppo_recipe(reward_model="./rm", value_model="/abs/value")))
    assert recipe.local_references() == {
        "algorithm.reward_model": tmp_path / "rm",
        "algorithm.value_model": Path("/abs/value"),
        "model.name_or_path": tmp_path / "model",
        "data.train.path": tmp_path / "data" / "train.jsonl",
        "data.eval.path": tmp_path.parent / "eval.csv",
        "distributed.config_file": tmp_path / "ds.json",
    }


def test_reward_model_training_data_is_a_local_input(write_recipe: RecipeWriter) -> None:
    training = {"data": {"path": "./prefs.jsonl"}}
    recipe = load_recipe(write_recipe(ppo_recipe(train_reward_model=training)))
    assert recipe.local_references()["algorithm.train_reward_model.data.path"].name == "prefs.jsonl"


def test_hub_ids_are_not_local(write_recipe: RecipeWriter, tmp_path: Path) -> None:
    data = ppo_recipe(reward_model="OpenAssistant/reward-model-deberta-v3-base")
    data["model"]["name_or_path"] = "Qwen/Qwen3-0.6B"
    data["data"]["train"]["path"] = "trl-lib/Capybara"
    references = load_recipe(write_recipe(data)).local_references()
    assert set(references) == {"data.eval.path", "distributed.config_file"}


def test_an_existing_folder_named_like_a_hub_id_is_local(
    write_recipe: RecipeWriter, tmp_path: Path
) -> None:
    (tmp_path / "Qwen" / "Qwen3-0.6B").mkdir(parents=True)
    data = ppo_recipe(reward_model="./rm")
    data["model"]["name_or_path"] = "Qwen/Qwen3-0.6B"
    references = load_recipe(write_recipe(data)).local_references()
    assert references["model.name_or_path"] == tmp_path / "Qwen" / "Qwen3-0.6B"


def test_with_references_replaces_only_those_fields_and_round_trips(
    write_recipe: RecipeWriter,
) -> None:
    recipe = load_recipe(write_recipe(ppo_recipe(reward_model="./rm")))
    container = {
        "model.name_or_path": "/c/model",
        "data.eval.path": "/c/eval.csv",
        "algorithm.reward_model": "/c/rm",
    }
    moved = recipe.with_references(container)
    assert moved.model.name_or_path == "/c/model" and moved.data.eval is not None
    assert moved.data.eval.path == "/c/eval.csv"
    assert moved.algorithm.reward_model == "/c/rm"  # type: ignore[union-attr]
    assert moved.data.train.path == "data/train.jsonl" and moved.base_dir == recipe.base_dir
    assert recipe.model.name_or_path == "./model"  # the original is untouched
    back = moved.with_references({"model.name_or_path": "./model", "data.eval.path": "../eval.csv"})
    assert back.with_references({"algorithm.reward_model": "./rm"}) == recipe


def test_with_references_refuses_a_field_that_is_not_a_path(write_recipe: RecipeWriter) -> None:
    recipe = load_recipe(write_recipe(ppo_recipe(reward_model="./rm")))
    for field in ("training.seed", "model.no_such_field", "data.nothing.path"):
        with pytest.raises(UsageError, match="not a path field"):
            recipe.with_references({field: "/x"})


def test_resolved_recipe_is_absolute_names_the_run_dir_and_reloads(
    write_recipe: RecipeWriter, tmp_path: Path
) -> None:
    recipe = load_recipe(write_recipe(ppo_recipe(reward_model="./rm"), name="my-ppo.yaml"))
    resolved = resolved_recipe(recipe, tmp_path / "run")
    data = resolved.to_yaml_dict()
    assert data["model"]["name_or_path"] == str(tmp_path / "model")
    assert data["distributed"]["config_file"] == str(tmp_path / "ds.json")
    assert data["output"]["dir"] == str(tmp_path / "run") and data["name"] == "my-ppo"
    saved = tmp_path / "run" / "recipe.resolved.yaml"
    saved.parent.mkdir()
    saved.write_text(yaml.safe_dump(data, sort_keys=False))
    reloaded: Recipe = load_recipe(saved)
    assert reloaded.to_yaml_dict() == data
    assert reloaded.local_references() == recipe.local_references()


def test_a_container_run_records_the_host_paths_it_was_handed(
    write_recipe: RecipeWriter, tmp_path: Path
) -> None:
    """What the runner in a container writes names the inputs as the user's host does."""
    recipe = load_recipe(write_recipe(ppo_recipe(reward_model="org/rm"), name="ppo.yaml"))
    host = {field: str(path) for field, path in recipe.local_references().items()}
    host["output.dir"] = str(tmp_path / "runs" / "ppo")
    container = {field: f"/aligntune/recipe/{Path(path).name}" for field, path in host.items()}
    del container["output.dir"]
    in_container = recipe.with_references(container, host)
    resolved = resolved_recipe(in_container, Path("/aligntune/run")).to_yaml_dict()
    assert "/aligntune" not in yaml.safe_dump(resolved)
    assert resolved["model"]["name_or_path"] == str(tmp_path / "model")
    assert resolved["algorithm"]["reward_model"] == "org/rm"  # a hub id as written
    assert resolved["output"]["dir"] == str(tmp_path / "runs" / "ppo")
    assert recorded_model(in_container, Path("/aligntune/run")) == str(tmp_path / "model")
    renames = renamed_paths(in_container, Path("/aligntune/run"))
    assert renames["/aligntune/recipe/model"] == str(tmp_path / "model")
    assert renames["/aligntune/run"] == str(tmp_path / "runs" / "ppo")
    # On the host nothing is renamed; a copy keeps the names; an unknown field is refused.
    assert renamed_paths(recipe, tmp_path / "runs" / "ppo") == {}
    assert in_container.model_copy(deep=True).host_paths == host
    with pytest.raises(UsageError, match=r"training\.seed: not a path field"):
        recipe.with_references({}, {"training.seed": "/x"})


def _bound_socket(path: Path) -> Path:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_bound_socket, r"\(-> .*/ds\.json\) is a socket"),
        (lambda p: os.mkfifo(p), r"\(-> .*/ds\.json\) is a FIFO \(named pipe\)"),
        (lambda p: p.symlink_to("/dev/null"), r"\(-> /dev/null\) is inside /dev"),
        (lambda p: p.symlink_to("/proc/self/environ"), r"\(-> /proc/\d+/environ\) is inside /proc"),
        (lambda p: p.symlink_to("/"), r"\(-> /\) holds /dev"),
    ],
)
def test_a_path_field_naming_host_state_is_refused_where_it_points(
    write_recipe: RecipeWriter, tmp_path: Path, make: Callable[[Path], Any], problem: str
) -> None:
    make(tmp_path / "ds.json")
    recipe = load_recipe(write_recipe(ppo_recipe(reward_model="./rm")))
    (found,) = unsafe_references(recipe)
    expected = rf"distributed\.config_file: \./ds\.json {problem}; {re.escape(PATH_RULE)}$"
    assert re.match(expected, found), found


def test_every_path_field_is_checked_and_regular_inputs_pass(
    write_recipe: RecipeWriter, tmp_path: Path
) -> None:
    data = ppo_recipe(reward_model="/var/run/docker.sock", value_model="/sys/kernel")
    data["data"]["eval"]["path"] = "/dev/stdin"
    problems = unsafe_references(load_recipe(write_recipe(data)))
    assert [p.split(":")[0] for p in problems] == [
        "algorithm.reward_model",
        "algorithm.value_model",
        "data.eval.path",
    ]
    (tmp_path / "ds.json").write_text("{}")
    (tmp_path / "model").mkdir()
    assert unsafe_references(load_recipe(write_recipe(ppo_recipe(reward_model="./rm")))) == []


def test_a_config_file_the_strategy_does_not_read_is_neither_listed_nor_kept(
    write_recipe: RecipeWriter, tmp_path: Path
) -> None:
    data = ppo_recipe(reward_model="./rm")
    data["distributed"] = {"strategy": "ddp", "config_file": "/elsewhere/accelerate.yaml"}
    recipe = load_recipe(write_recipe(data))
    assert unread_references(recipe) == {
        "distributed.config_file": "only strategy deepspeed reads it, and this recipe's "
        "strategy is ddp"
    }
    assert "distributed.config_file" not in recipe.local_references()
    assert recipe.with_references({}).distributed.config_file is None
    assert resolved_recipe(recipe, tmp_path / "run").distributed.config_file is None
    assert unread_references(load_recipe(write_recipe(ppo_recipe(reward_model="./rm")))) == {}


def test_each_source_of_a_mixture_is_a_local_input_and_re_roots(
    write_recipe: RecipeWriter, tmp_path: Path
) -> None:
    data = ppo_recipe(reward_model="./rm")
    data["data"]["train"] = [
        {"path": "a.jsonl"},
        {"path": "trl-lib/Capybara"},
        {"path": "/d/b.csv"},
    ]
    recipe = load_recipe(write_recipe(data))
    references = recipe.local_references()
    assert references["data.train.0.path"] == tmp_path / "a.jsonl"
    assert references["data.train.2.path"] == Path("/d/b.csv")
    assert "data.train.1.path" not in references  # a hub id
    moved = recipe.with_references({"data.train.2.path": "/c/b.csv"})
    assert [s.path for _, s in moved.data.train_sources()] == [
        "a.jsonl",
        "trl-lib/Capybara",
        "/c/b.csv",
    ]
    with pytest.raises(UsageError, match=r"data\.train\.3\.path: not a path field"):
        recipe.with_references({"data.train.3.path": "/c/x"})
