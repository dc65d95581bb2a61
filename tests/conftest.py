"""Fixtures shared by every test tree: the repository's tiny model, data and recipe writing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "recipes" / "tiny"


def tiny_data_file(algorithm: str) -> str:
    """The data file's name in the shipped tiny recipe of `algorithm`."""
    tiny = yaml.safe_load((TINY / f"{algorithm}.yaml").read_text(encoding="utf-8"))
    return Path(tiny["data"]["train"]["path"]).name


@pytest.fixture
def tiny_model() -> Path:
    """The shipped tiny random Qwen2 (2 layers, hidden 64, vocab 512)."""
    return TINY / "model"


def base_recipe(algorithm: str = "sft", **sections: Any) -> dict[str, Any]:
    """A minimal valid recipe for the tiny model and data; sections replace the defaults."""
    data_file = tiny_data_file(algorithm)
    recipe: dict[str, Any] = {
        "algorithm": {"name": algorithm},
        "model": {"name_or_path": str(TINY / "model")},
        "data": {"train": {"path": str(TINY / "data" / data_file)}, "max_length": 64},
        "training": {"max_steps": 2, "batch_size": 4},
    }
    if algorithm in ("grpo", "gspo", "dapo", "dr_grpo"):
        recipe["algorithm"]["num_generations"] = 2
        recipe["rewards"] = [{"function": "numeric_match", "params": {"column": "answer"}}]
    if algorithm == "ppo":
        recipe["algorithm"]["reward_model"] = str(TINY / "model")
    recipe.update(sections)
    return recipe


@pytest.fixture
def write_recipe(tmp_path: Path) -> Callable[..., Path]:
    """Write a recipe (a dict, or raw YAML text) into tmp_path and return its path."""

    def write(content: dict[str, Any] | str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[[str, list[Any]], Path]:
    """Write rows as JSON Lines into tmp_path and return the file's path."""

    def write(name: str, rows: list[Any]) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_recipe() -> Callable[..., dict[str, Any]]:
    """base_recipe as a fixture: make_recipe("dpo", training={...})."""
    return base_recipe


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI (CI=true) a skipped test fails the run: CI must really run docker and training."""
    if os.environ.get("CI", "").lower() not in ("1", "true"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write_sep(
            "!", f"CI=true and {len(skipped)} test(s) skipped: failing the run", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
