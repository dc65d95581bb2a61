"""KTO trains on unpaired feedback in each shape users bring it, written by the test in its
published shape; labels that core never read (parquet, hub data) are checked by the runner before
the run directory exists."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from trl_helpers import changed, check_run_dir, make_run, trainable, tree_snapshot

from aligntune.core.backend_factory import create_rl_trainer
from aligntune.core.data_check import NO_NAMES
from aligntune.core.trained_turns import template_turns
from aligntune.runners.common.data import convert_row
from aligntune.runners.common.sources import shape_row
from aligntune.runners.trl.cli import main

pytestmark = pytest.mark.training

ANIMALS = ("cats", "dogs", "owls", "bees")


def feedback() -> list[tuple[str, str, bool]]:
    """(prompt, completion, label) rows, desirable and undesirable alternating."""
    rows = []
    for animal in ANIMALS:
        rows.append((f"Say something about {animal}.", f"I like {animal}, they are kind.", True))
        rows.append((f"How do you feel about {animal}?", f"{animal} are terrible.", False))
    return rows


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


SHAPES: dict[str, tuple[str, Callable[[], str]]] = {
    # TRL's unpaired preference, conversational (trl-lib/kto-mix-14k's shape).
    "prompt-completion-turns": (
        "kto.jsonl",
        lambda: _jsonl(
            [
                {"prompt": _user(p), "completion": _assistant(c), "label": y}
                for p, c, y in feedback()
            ]
        ),
    ),
    # A chat log with a thumbs-up/down per conversation: the last turn is what was rated.
    "messages-label": (
        "kto.jsonl",
        lambda: _jsonl(
            [{"messages": _user(p) + _assistant(c), "label": y} for p, c, y in feedback()]
        ),
    ),
    # A spreadsheet export.
    "csv": (
        "kto.csv",
        lambda: (
            "prompt,completion,label\n"
            + "".join(f'"{p}","{c}",{"True" if y else "False"}\n' for p, c, y in feedback())
        ),
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_kto_trains_three_steps_on_each_shape(
    shape: str, tiny_recipe: Callable[..., Path], tiny_dir: Path, tmp_path: Path
) -> None:
    name, content = SHAPES[shape]
    (tiny_dir / "data" / name).write_text(content(), encoding="utf-8")
    recipe = tiny_recipe(
        "kto",
        data={"train": {"path": f"./data/{name}"}, "system_prompt": "Answer kindly."},
        training={"max_steps": 3, "save_steps": 2, "batch_size": 4},
    )
    run = make_run(recipe, tmp_path / "run")
    assert run.trainer.train_dataset.num_rows == len(feedback())
    before = trainable(run.trainer.model)
    run.train()
    assert sorted(changed(before, run.trainer.model)) == sorted(before)
    events = check_run_dir(tmp_path / "run", "kto")
    assert events[-1]["metrics"]["global_step"] == 3
    logs = [e for e in events if e["event"] == "log"]
    assert all("rewards/chosen" in e and "rewards/rejected" in e for e in logs)


def _parquet(path: Path, labels: list[Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = feedback()[: len(labels)]
    table = {"prompt": [r[0] for r in rows], "completion": [r[1] for r in rows], "label": labels}
    pq.write_table(pa.table(table), path)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([1, 0, 1, 0], "data.train: column label holds int64, not booleans"),
        ([True] * 4, "data.train: every one of the 4 rows is desirable (true)"),
    ],
)
def test_parquet_labels_are_checked_before_anything_is_written(
    labels: list[Any],
    message: str,
    tiny_recipe: Callable[..., Path],
    tiny_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _parquet(tiny_dir / "data" / "kto.parquet", labels)
    recipe = tiny_recipe("kto", data={"train": {"path": "./data/kto.parquet"}})
    before = tree_snapshot(tiny_dir)
    code = main(["run", str(recipe), "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    assert tree_snapshot(tiny_dir) == before


def test_create_rl_trainer_kto(tiny_dir: Path, tmp_path: Path) -> None:
    trainer = create_rl_trainer(
        model_name=str(tiny_dir / "model"),
        dataset_name=str(tiny_dir / "data" / "kto.jsonl"),
        algorithm="kto",
        backend="trl",
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        batch_size=4,
        max_seq_length=64,
        undesirable_weight=1.2,
    )
    config = trainer.settings["config_kwargs"]
    assert config["loss_type"] == "kto" and config["undesirable_weight"] == 1.2
    assert trainer.train()["global_step"] == 2


def test_the_last_turn_is_the_completion_and_text_meets_turns_as_turns() -> None:
    system = {"role": "system", "content": "Be kind."}
    row = {"messages": _user("Hi") + _assistant("Hello"), "label": True}
    converted = convert_row(shape_row(row, "feedback_messages", NO_NAMES), "Be kind.")
    assert template_turns(converted["prompt"]) == [system, *_user("Hi")]
    assert template_turns(converted["completion"]) == _assistant("Hello")
    assert converted["label"] is True
    text_and_turns = {"prompt": "Hi", "completion": _assistant("Hello"), "label": False}
    mixed = convert_row(shape_row(text_and_turns, "feedback", NO_NAMES), None)
    assert template_turns(mixed["prompt"]) == _user("Hi")
    assert template_turns(mixed["completion"]) == _assistant("Hello")
