"""Built-in rewards follow TRL's contract and compare against the dataset's own columns; user
rewards are imported from the recipe's folder and called as TRL calls them."""

from __future__ import annotations

import sys

import pytest

from aligntune.core import reward_checks
from aligntune.core.errors import UserInputError
from aligntune.core.reward_checks import check_reward_call, check_user_reward, reward_column
from aligntune.core.rewards import (
    RewardImportError,
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


ROWS = [("d.jsonl:1", {"prompt": "What is 1 + 1?", "answer": "2"}), ("d.jsonl:2", {"prompt": "p"})]


def test_a_reward_call_passes_trl_keywords_and_accepts_numbers_or_none() -> None:
    seen: dict[str, object] = {}

    def score(prompts, completions, completion_ids, answer, trainer_state, **kwargs):
        seen.update(prompts=prompts, completions=completions, answer=answer)
        return [None if a is None else int(a) for a in answer]

    check_reward_call(score, ROWS, "m:score")
    assert seen == {
        "prompts": ["What is 1 + 1?", "p"],
        "completions": seen["prompts"],
        "answer": ["2", None],
    }
    turns = [("d:1", {"prompt": [{"role": "user", "content": "hi"}]})]
    check_reward_call(lambda completions, **kw: [len(completions[0])], turns, "m:turns")


def test_a_failing_reward_call_names_the_function_and_the_row() -> None:
    def picky(completions, answer, **kwargs):
        return [float(a) for a in answer]  # the second row has no answer

    with pytest.raises(UserInputError, match=r"reward m:picky raised TypeError: .* on d\.jsonl:2"):
        check_reward_call(picky, ROWS, "m:picky")
    with pytest.raises(UserInputError, match=r"returned inf for completion 0 on d\.jsonl:1"):
        check_reward_call(lambda **kw: [float("inf")], ROWS, "m:inf")


def test_each_recipe_folder_gets_its_own_module_and_no_bytecode(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(
        sys, "dont_write_bytecode", False
    )  # as where PYTHONDONTWRITEBYTECODE is unset
    for name, value in (("one", 1.0), ("two", 2.0)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "shared_name_rewards.py").write_text(
            f"def score(completions, **kwargs):\n    return [{value}] * len(completions)\n"
        )
        score = load_reward("shared_name_rewards:score", {}, folder)
        assert score(completions=["a"]) == [value]
        assert sorted(p.name for p in folder.iterdir()) == ["shared_name_rewards.py"]


def test_the_host_leaves_to_the_runner_what_it_cannot_import(tmp_path) -> None:
    (tmp_path / "needs_stack.py").write_text(
        "import no_such_package_here\ndef score(completions, **kwargs):\n    return []\n"
    )
    check_user_reward("needs_stack:score", tmp_path, ROWS)  # the runner's environment may have it
    with pytest.raises(RewardImportError, match="No module named 'no_such_package_here'"):
        load_reward("needs_stack:score", {}, tmp_path)
    # A function of the caller's own module (the Python API passes it) is checked by the runner.
    check_user_reward(f"{__name__}:not_a_module_attribute", tmp_path, ROWS)
    with pytest.raises(UserInputError, match=r"no module 'typo_rewards': neither typo_rewards\.py"):
        check_user_reward("typo_rewards:score", tmp_path, ROWS)


def test_a_builtin_reward_reads_its_column_or_its_default() -> None:
    assert reward_column("numeric_match", {}) == ("answer", False)
    assert reward_column("exact_match", {"column": "gold"}) == ("gold", True)
    assert reward_column("contains", {"text": "x"}) is None
    assert reward_column("length_penalty", {}) is None


def test_a_reward_that_never_returns_is_stopped_and_named(monkeypatch) -> None:
    monkeypatch.setattr(reward_checks, "CALL_LIMIT_S", 1)

    def spin(completions, **kwargs):
        while True:
            pass

    with pytest.raises(UserInputError, match=r"reward mod:spin on .* did not return within 1 s"):
        check_reward_call(spin, ROWS, "mod:spin")


def test_what_a_reward_prints_goes_to_stderr_never_into_stdout(capsys) -> None:
    def chatty(completions, **kwargs):
        print("debug: scoring")
        return [0.0] * len(completions)

    check_reward_call(chatty, ROWS, "mod:chatty")
    out, err = capsys.readouterr()
    assert out == "" and "debug: scoring" in err
