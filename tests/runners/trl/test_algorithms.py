"""Every algorithm trains the tiny model end to end, in-process and through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from trl_helpers import ALGORITHMS, SHORT, changed, check_run_dir, make_run, run_cli, trainable

from aligntune.core.algorithms import get_algorithm

pytestmark = pytest.mark.training


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_trains_in_process(
    algorithm: str, tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe(algorithm, **SHORT[algorithm])
    run = make_run(recipe, tmp_path / "run")
    before = trainable(run.trainer.model)
    assert before, "no trainable parameters"
    run.train()
    moved = changed(before, run.trainer.model)
    assert sorted(moved) == sorted(before), f"unchanged: {set(before) - set(moved)}"
    events = check_run_dir(tmp_path / "run", algorithm)
    settings = json.loads((tmp_path / "run" / "trainer_settings.json").read_text())
    for key, value in get_algorithm(algorithm).defining_settings.items():
        assert settings["config_kwargs"][key] == value
    assert events[-1]["metrics"]["global_step"] == SHORT[algorithm]["training"]["max_steps"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_trains_through_cli(
    algorithm: str, tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe(algorithm, **SHORT[algorithm])
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "finished" in result.stdout
    check_run_dir(tmp_path / "run", algorithm)
