"""Bad input: a clean message, exit 1, no final/, nothing deleted or written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from trl_helpers import run_cli, tree_snapshot

from aligntune.runners.trl.cli import main


def _break_missing_column(folder: Path) -> dict:
    rows = [{"prompt": "p", "chosen": "a"}] * 4
    (folder / "data" / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"data": {"train": {"path": "./data/bad.jsonl", "format": "preference"}}}


def _break_empty(folder: Path) -> dict:
    (folder / "data" / "empty.jsonl").write_text("")
    return {"data": {"train": {"path": "./data/empty.jsonl"}}}


def _break_jsonl_line(folder: Path) -> dict:
    good = (folder / "data" / "dpo.jsonl").read_text().splitlines()
    (folder / "data" / "broken.jsonl").write_text("\n".join([*good[:2], "{not json", *good[2:]]))
    return {"data": {"train": {"path": "./data/broken.jsonl"}}}


def _unknown_reward(folder: Path) -> dict:
    return {"rewards": [{"function": "rewards:no_such_reward"}]}


def _wrong_signature(folder: Path) -> dict:
    (folder / "bad_rewards.py").write_text("def strict(completions):\n    return [0.0]\n")
    return {"rewards": [{"function": "bad_rewards:strict"}]}


def _missing_model(folder: Path) -> dict:
    return {"model": {"name_or_path": "./no-such-model"}}


ALTERNATING = (
    "{% for m in messages %}"
    "{% if loop.index0 > 0 and m['role'] == messages[loop.index0 - 1]['role'] %}"
    "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""A ChatML template that refuses two turns of one role in a row, as many models' do."""


def _template_fails_on_a_later_row(folder: Path) -> dict:
    rows = (folder / "data" / "sft.jsonl").read_text().splitlines()[:6]
    twice = {"role": "user", "content": "Where is Lima?"}
    bad = {"messages": [twice, twice, {"role": "assistant", "content": "In Peru."}]}
    rows.insert(3, json.dumps(bad))
    (folder / "data" / "alternate.jsonl").write_text("\n".join(rows) + "\n")
    return {
        "model": {"name_or_path": "./model", "chat_template": ALTERNATING},
        "data": {"train": {"path": "./data/alternate.jsonl"}},
    }


CASES = {
    "missing column": ("dpo", _break_missing_column, "rejected"),
    "empty dataset": ("dpo", _break_empty, "empty"),
    "bad JSONL line": ("dpo", _break_jsonl_line, "broken.jsonl:3"),
    "unknown reward": ("grpo", _unknown_reward, "no_such_reward"),
    "wrong reward signature": ("grpo", _wrong_signature, "**kwargs"),
    "missing model folder": ("sft", _missing_model, "no-such-model"),
    "template fails on a later row": (
        "sft",
        _template_fails_on_a_later_row,
        "starting 'Where is Lima?'): the chat template failed on it: Conversation roles must",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_1_cleanly(
    case: str,
    tiny_recipe: Callable[..., Path],
    tiny_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    algorithm, breaker, expected = CASES[case]
    recipe = tiny_recipe(algorithm, **breaker(tiny_dir))
    before = tree_snapshot(tiny_dir)
    run_dir = tmp_path / "run"
    code = main(["run", str(recipe), "--output", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert expected in err
    assert "Traceback" not in err
    # transformers' own progress bar of loading the weights comes first when data is refused
    # after the model loaded (its tokenizer decides how rows are read).
    lines = [line for line in err.splitlines() if line and not line.startswith("Loading weights")]
    assert all(line.startswith(("error: ", "hint: ", "  ")) for line in lines), err
    assert not run_dir.exists()
    assert tree_snapshot(tiny_dir) == before


def test_bad_input_through_a_real_process(
    tiny_recipe: Callable[..., Path], tiny_dir: Path, tmp_path: Path
) -> None:
    recipe = tiny_recipe("dpo", **_break_missing_column(tiny_dir))
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "rejected" in result.stderr
    assert not (tmp_path / "run").exists()


def test_bad_recipe_lists_every_problem(
    tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tiny_dir / "typo.yaml"
    recipe.write_text("algorithm: {name: sft}\nmodel: {name_or_path: ./model, dtyp: auto}\n")
    assert main(["run", str(recipe), "--output", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "model.dtyp" in err and "data: required field is missing" in err
    assert not (tmp_path / "run").exists()


def test_reference_flags_re_root_the_recipe_before_anything_is_written(
    tiny_recipe: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--reference FIELD=PATH` is how the launcher hands the runner its container paths."""
    recipe = str(tiny_recipe("sft"))
    run_dir = str(tmp_path / "run")
    moved = ["--reference", "model.name_or_path=/aligntune/inputs/1-model"]
    assert main(["run", recipe, "--output", run_dir, *moved]) == 1
    assert "/aligntune/inputs/1-model not found" in capsys.readouterr().err
    assert main(["run", recipe, "--output", run_dir, "--reference", "training.seed=/x"]) == 2
    assert "training.seed: not a path field" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
