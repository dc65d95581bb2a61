"""Which tokens carry labels, format by format: rows of each published shape go through the
runner's own data loading with the tiny model's tokenizer, and the trained tokens are read back.

Only assistant turns are learned (their text and end token, never the header that opens them);
system prompts, tool results and turns marked `loss_weight: 0` never are; user turns only when
`assistant_only_loss` is false.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from format_files import (
    TOOL_TEMPLATE,
    content_part_rows,
    openai_tool_rows,
    sharegpt_preference_rows,
    sharegpt_rows,
    sharegpt_tool_rows,
    write_jsonl,
)

from aligntune.core.loader import recipe_from_dict
from aligntune.core.preflight import check_inputs
from aligntune.core.recipe import Recipe
from aligntune.runners.common.data import load_data
from aligntune.runners.common.models import load_tokenizer

MODEL = Path(__file__).resolve().parents[3] / "recipes" / "tiny" / "model"
END = "<|im_end|>"


def _recipe(
    tmp_path: Path, train: Any, algorithm: str = "sft", model: dict[str, Any] | None = None
) -> Recipe:
    data = {
        "algorithm": {"name": algorithm},
        "model": {"name_or_path": str(MODEL), **(model or {})},
        "data": {"train": train, "max_length": 1024},
    }
    return recipe_from_dict(data, base_dir=tmp_path)


def _load(recipe: Recipe) -> tuple[Any, Any]:
    check_inputs(recipe)  # what validate accepts is what the runner loads
    tokenizer = load_tokenizer(recipe, str(MODEL))
    return load_data(recipe, tokenizer), tokenizer


def trained_spans(row: dict[str, list[int]], tokenizer: Any) -> list[str]:
    """Each run of consecutive labelled tokens, decoded."""
    spans: list[list[int]] = []
    previous = False
    for token, label in zip(row["input_ids"], row["labels"], strict=True):
        learned = label != -100
        if learned:
            assert label == token
            if not previous:
                spans.append([])
            spans[-1].append(token)
        previous = learned
    return [tokenizer.decode(span) for span in spans]


def _spans(tmp_path: Path, rows: list[dict[str, Any]], **changes: Any) -> list[list[str]]:
    algorithm = changes.pop("algorithm", {})
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    recipe = _recipe(tmp_path, {"path": str(path)}, **changes)
    if algorithm:
        recipe.algorithm = recipe.algorithm.model_copy(update=algorithm)
    data, tokenizer = _load(recipe)
    assert data.eval is None
    return [trained_spans(row, tokenizer) for row in data.train]


def test_sharegpt_trains_each_assistant_turn_only(tmp_path: Path) -> None:
    spans = _spans(tmp_path, sharegpt_rows())
    assert spans[0] == [f"Paris.{END}", f"Yes.{END}"]
    assert [s[0] for s in spans] == [
        f"{city}.{END}" for city in ("Paris", "Madrid", "Rome", "Lima")
    ]


def test_user_turns_are_trained_when_the_recipe_says_so_and_system_never(tmp_path: Path) -> None:
    spans = _spans(tmp_path, sharegpt_rows(), algorithm={"assistant_only_loss": False})
    assert spans[0] == [
        f"<|im_start|>user\nCapital of France?{END}",
        f"Paris.{END}",
        f"<|im_start|>user\nSure?{END}",
        f"Yes.{END}",
    ]


def test_content_parts_are_flattened_and_loss_weight_zero_is_not_trained(tmp_path: Path) -> None:
    spans = _spans(tmp_path, content_part_rows())
    assert spans[0] == [f"Paris.{END}"]


def test_openai_tool_calls_are_trained_and_tool_results_are_not(tmp_path: Path) -> None:
    spans = _spans(tmp_path, openai_tool_rows(), model={"chat_template": TOOL_TEMPLATE})
    assert spans[0] == [
        f'<call>get_weather {{"city": "Paris"}}</call>{END}',
        f"Clear in Paris.{END}",
    ]


def test_sharegpt_function_call_and_observation_turns(tmp_path: Path) -> None:
    spans = _spans(tmp_path, sharegpt_tool_rows(), model={"chat_template": TOOL_TEMPLATE})
    assert spans[0] == [
        f'<call>get_weather {{"city": "Paris"}}</call>{END}',
        f"Clear in Paris.{END}",
    ]


def test_tools_reach_the_template(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", openai_tool_rows())
    recipe = _recipe(tmp_path, {"path": str(path)}, model={"chat_template": TOOL_TEMPLATE})
    data, tokenizer = _load(recipe)
    text = tokenizer.decode(data.train[0]["input_ids"])
    assert text.startswith('<|im_start|>system\nTools: [{"type": "function"')
    assert '<|im_start|>tool\n{"sky": "clear"}<|im_end|>' in text


def test_alpaca_rows_train_the_output_only(tmp_path: Path) -> None:
    rows = [{"instruction": "Capital of France?", "input": "", "output": "Paris."}]
    assert _spans(tmp_path, rows) == [[f"Paris.{END}"]]


def test_mixture_uses_each_source_by_weight_and_max_samples(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "sharegpt.jsonl", sharegpt_rows() * 2)
    second = write_jsonl(tmp_path / "parts.jsonl", content_part_rows())
    train = [{"path": str(first), "weight": 0.5}, {"path": str(second), "max_samples": 3}]
    recipe = _recipe(tmp_path, train)
    data, tokenizer = _load(recipe)
    spans = [trained_spans(row, tokenizer) for row in data.train]
    from_sharegpt = [s for s in spans if len(s) == 2]
    from_parts = [s for s in spans if len(s) == 1]
    assert (len(from_sharegpt), len(from_parts)) == (4, 3)
    assert sorted(s[0] for s in from_parts) == sorted(
        f"{c}.{END}" for c in ("Paris", "Madrid", "Rome")
    )
    again, _ = _load(recipe)
    assert again.train["input_ids"] == data.train["input_ids"]  # the seed decides the order


def test_sharegpt_preference_becomes_conversational_pairs(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", sharegpt_preference_rows())
    data, _ = _load(_recipe(tmp_path, {"path": str(path)}, algorithm="dpo"))
    row = data.train[0]
    assert row["prompt"] == [{"role": "user", "content": "Capital of France?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "Paris."}]
    assert row["rejected"] == [{"role": "assistant", "content": "Ask someone else."}]


@pytest.mark.parametrize("rows", [openai_tool_rows, sharegpt_tool_rows])
def test_tools_with_a_template_that_cannot_render_them_are_refused(tmp_path: Path, rows) -> None:
    from aligntune.core.errors import UserInputError

    path = write_jsonl(tmp_path / "d.jsonl", rows())
    with pytest.raises(UserInputError, match="chat template never reads tools or tool_calls"):
        check_inputs(_recipe(tmp_path, {"path": str(path)}))


def test_rows_whose_trained_turns_lie_past_max_length_are_refused(tmp_path: Path) -> None:
    from aligntune.core.errors import DataError

    path = write_jsonl(tmp_path / "d.jsonl", openai_tool_rows())
    recipe = _recipe(tmp_path, {"path": str(path)}, model={"chat_template": TOOL_TEMPLATE})
    recipe.data.max_length = 32
    with pytest.raises(
        DataError, match=r"no conversation has a trained token within data\.max_length 32"
    ):
        _load(recipe)


def test_more_conversations_than_a_tokenized_chunk_keep_their_order(tmp_path: Path) -> None:
    from aligntune.runners.common.data import TOKENIZED_CHUNK

    count = TOKENIZED_CHUNK + 5
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Add {n}?"},
                {"role": "assistant", "content": f"{n}"},
            ]
        }
        for n in range(count)
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    data, tokenizer = _load(_recipe(tmp_path, {"path": str(path)}))
    assert len(data.train) == count
    for n in (0, TOKENIZED_CHUNK - 1, TOKENIZED_CHUNK, count - 1):
        assert trained_spans(data.train[n], tokenizer) == [f"{n}{END}"]


@pytest.mark.parametrize("packing", [False, True])
def test_rows_are_held_as_far_as_the_trainer_reads_them(tmp_path: Path, packing: bool) -> None:
    from trl import SFTConfig

    from aligntune.runners.common.settings import sft_kwargs

    long = {"role": "assistant", "content": "Paris is the capital. " * 40}
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "Hi"}, long]}]
    )
    data = {"train": {"path": str(path)}, "max_length": 32}
    algorithm = {"name": "sft", "packing": packing}
    recipe = recipe_from_dict(
        {"algorithm": algorithm, "model": {"name_or_path": str(MODEL)}, "data": data},
        base_dir=tmp_path,
    )
    loaded, _ = _load(recipe)
    held = len(loaded.train[0]["input_ids"])
    # Unpacked, TRL keeps each row's first max_length tokens (aligntune leaves truncation_mode);
    # packed, it takes every token.
    assert "truncation_mode" not in sft_kwargs(recipe, recipe.algorithm)  # type: ignore[arg-type]
    mode = next(f.default for f in dataclasses.fields(SFTConfig) if f.name == "truncation_mode")
    assert mode == "keep_start"
    assert held > 32 if packing else held == 32
