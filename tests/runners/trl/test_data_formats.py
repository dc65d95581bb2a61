"""The data shapes users bring from other tools train the tiny model 3 steps, in-process: ShareGPT
SFT and preference, content parts, OpenAI and ShareGPT tool calling, and a mixture of two
formats. Each run finishes, logs a loss and moves every trainable parameter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from format_files import (
    TOOL_TEMPLATE,
    content_part_rows,
    openai_tool_rows,
    sharegpt_preference_rows,
    sharegpt_rows,
    sharegpt_tool_rows,
    write_jsonl,
)
from trl_helpers import changed, check_run_dir, make_run, trainable

pytestmark = pytest.mark.training

STEPS = 3


def _recipe(tiny_dir: Path, algorithm: str, train: Any, **model: Any) -> Path:
    data = {
        "algorithm": {"name": algorithm},
        "model": {
            "name_or_path": "./model",
            "peft": {"method": "lora", "r": 8, "alpha": 16},
            **model,
        },
        "data": {"train": train, "max_length": 256},
        "training": {"max_steps": STEPS, "batch_size": 2, "learning_rate": 5e-3, "save_steps": 2},
    }
    path = tiny_dir / f"{algorithm}-formats.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


CASES: dict[str, tuple[str, Callable[[], list[dict[str, Any]]], dict[str, Any]]] = {
    "sharegpt": ("sft", sharegpt_rows, {}),
    "content-parts": ("sft", content_part_rows, {}),
    "openai-tools": ("sft", openai_tool_rows, {"chat_template": TOOL_TEMPLATE}),
    "sharegpt-tools": ("sft", sharegpt_tool_rows, {"chat_template": TOOL_TEMPLATE}),
    "sharegpt-preference": ("dpo", sharegpt_preference_rows, {}),
}


def _train(recipe: Path, run_dir: Path, algorithm: str) -> None:
    run = make_run(recipe, run_dir)
    before = trainable(run.trainer.model)
    run.train()
    moved = changed(before, run.trainer.model)
    assert sorted(moved) == sorted(before), f"unchanged: {set(before) - set(moved)}"
    events = check_run_dir(run_dir, algorithm)
    assert events[-1]["metrics"]["global_step"] == STEPS


@pytest.mark.parametrize("case", CASES)
def test_format_trains(case: str, tiny_dir: Path, tmp_path: Path) -> None:
    algorithm, rows, model = CASES[case]
    write_jsonl(tiny_dir / "data" / "d.jsonl", rows())
    recipe = _recipe(tiny_dir, algorithm, {"path": "./data/d.jsonl"}, **model)
    _train(recipe, tmp_path / "run", algorithm)


def test_mixture_of_two_formats_trains(tiny_dir: Path, tmp_path: Path) -> None:
    write_jsonl(tiny_dir / "data" / "sharegpt.jsonl", sharegpt_rows())
    train = [
        {"path": "./data/sharegpt.jsonl", "weight": 2},
        {"path": "./data/sft.jsonl", "max_samples": 8},  # the shipped OpenAI messages
    ]
    _train(_recipe(tiny_dir, "sft", train), tmp_path / "run", "sft")
