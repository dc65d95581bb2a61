"""Built-in rewards follow TRL's contract and compare against the dataset's own columns."""

from __future__ import annotations

import pytest

from aligntune.core.errors import UserInputError
from aligntune.core.rewards import (
    contains,
    exact_match,
    format_regex,
    length_penalty,
    load_reward,
    numeric_match,
    overlong_penalty,
)

CONVERSATIONAL = [[{"role": "assistant", "content": "The answer is 1,234."}]]


def test_numeric_match_compares_with_the_gold_column() -> None:
    got = numeric_match(["so 7", "it is 8", "none"], answer=["7", "7", "7"], prompts=["p"] * 3)
    assert got == [1.0, 0.0, 0.0]
    assert numeric_match(CONVERSATIONAL, answer=["1234"]) == [1.0]


def test_exact_match_and_contains() -> None:
    assert exact_match([" Paris ", "paris"], answer=["Paris", "Paris"]) == [1.0, 0.0]
    assert contains(["I like CATS"], text="cats") == [1.0]
    assert contains(["I like dogs"], column="pet", pet=["cats"]) == [0.0]


def test_format_length_and_overlong() -> None:
    assert format_regex(["<a>1</a>", "1"], pattern=r"<a>\d</a>") == [1.0, 0.0]
    assert length_penalty(["x" * 10, "x" * 30], target_chars=20) == [0.0, -0.5]
    ids = [[0] * 5, [0] * 9, [0] * 20]
    assert overlong_penalty(["", "", ""], completion_ids=ids, max_tokens=10, buffer_tokens=4) == [
        0.0,
        -0.75,
        -1.0,
    ]


def test_a_missing_column_names_the_columns_passed() -> None:
    with pytest.raises(KeyError, match="needs dataset column 'answer'; columns passed: question"):
        numeric_match(["1"], question=["q"], completion_ids=[[1]])


def test_user_rewards_load_from_the_recipe_folder_and_are_checked(tmp_path) -> None:
    (tmp_path / "my_rewards_ok.py").write_text(
        "def score(completions, **kwargs):\n    return [1.0 for _ in completions]\n"
        "def strict(completions, answer):\n    return [0.0]\n",
        encoding="utf-8",
    )
    score = load_reward("my_rewards_ok:score", {}, tmp_path)
    assert score(completions=["a", "b"], completion_ids=[[1], [2]]) == [1.0, 1.0]
    with pytest.raises(UserInputError, match=r"must accept \*\*kwargs"):
        load_reward("my_rewards_ok:strict", {}, tmp_path)
    with pytest.raises(UserInputError, match="has no function 'missing'"):
        load_reward("my_rewards_ok:missing", {}, tmp_path)
    with pytest.raises(UserInputError, match="cannot import module 'no_such_module_xyz'"):
        load_reward("no_such_module_xyz:f", {}, tmp_path)


def test_builtins_bind_their_params_and_keep_their_name(tmp_path) -> None:
    reward = load_reward("contains", {"text": "yes"}, tmp_path)
    assert reward.__name__ == "contains"
    assert reward(completions=["yes!", "no"], prompts=["p", "p"]) == [1.0, 0.0]
