"""Exit codes and the one way every command prints a known error."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from aligntune.core.errors import (
    AlignTuneError,
    BackendUnavailableError,
    ExitCode,
    RecipeError,
    UsageError,
    UserInputError,
    error_lines,
    signal_exit_code,
)


def test_exit_codes_are_the_documented_numbers() -> None:
    """Scripts and the docs rely on these numbers: changing one is a breaking change."""
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "USER_INPUT": 1,
        "USAGE": 2,
        "UNAVAILABLE": 3,
        "DIVERGED": 4,
        "CRASH": 70,
        "INTERRUPTED_SIGINT": 130,
        "INTERRUPTED_SIGTERM": 143,
    }


@pytest.mark.parametrize(
    "doc", ["README.md", "docs/cli.md", "docs/contract.md", "packages/runner-common/README.md"]
)
def test_the_docs_list_every_exit_code_by_its_name(doc: str) -> None:
    """Each code's name stands on a line with its number, so a new or renumbered code shows."""
    text = (Path(__file__).resolve().parents[2] / doc).read_text(encoding="utf-8")
    for code in ExitCode:
        lines = [line for line in text.splitlines() if f"`{code.name}`" in line]
        assert any(str(int(code)) in line for line in lines), (doc, code.name)


def test_each_error_class_carries_its_exit_code() -> None:
    assert UserInputError("x").exit_code is ExitCode.USER_INPUT
    assert UsageError("x").exit_code is ExitCode.USAGE
    assert BackendUnavailableError("x").exit_code is ExitCode.UNAVAILABLE


def test_a_signal_exits_as_a_shell_reports_it() -> None:
    assert signal_exit_code(signal.SIGINT) is ExitCode.INTERRUPTED_SIGINT
    assert signal_exit_code(signal.SIGTERM) is ExitCode.INTERRUPTED_SIGTERM
    assert signal_exit_code(signal.SIGKILL) == 137


def test_a_recipe_error_is_one_error_line_with_its_problems_below_then_the_hint() -> None:
    error = RecipeError("r.yaml", ["a: bad", "b: worse"], hint="fix a and b")
    assert error_lines(error) == [
        "error: r.yaml: 2 problems",
        "  a: bad",
        "  b: worse",
        "hint: fix a and b",
    ]


def test_each_unindented_line_is_an_error_and_the_default_hint_fills_in() -> None:
    error = UserInputError("model.name_or_path: not found\ndata.train: no rows")
    assert error_lines(error) == [
        "error: model.name_or_path: not found",
        "error: data.train: no rows",
    ]
    assert error_lines(error, default_hint="look closer")[-1] == "hint: look closer"
    own = AlignTuneError("x", hint="its own")
    assert error_lines(own, default_hint="look closer") == ["error: x", "hint: its own"]
