"""The broken-input corpus: what a user could get wrong, and what aligntune must then do.

A case is the files a user writes (a recipe, data, a reward module, ...) and the command they
run. Whatever the mistake, the command must end with the case's exit code and a message that
names the field or `file:line`, print no traceback, start nothing and leave every folder it was
given exactly as it was. Cases live in `tests/broken/cases/*.py`, each module a `CASES` list;
`test_corpus.py` runs them all, in-process through the CLI's own entry point (an exception that
escapes it fails the case, as a traceback on a terminal would).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from aligntune.cli.main import main
from aligntune.core.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny"

Content = str | bytes | Callable[[Path], str | bytes]
"""A file's content, or a function of the user's folder that makes it."""

EVERY_COMMAND: tuple[tuple[str, ...], ...] = (
    ("validate", "recipe.yaml"),
    ("plan", "recipe.yaml"),
    ("run", "recipe.yaml"),
)
"""A mistake in the recipe or its data is caught alike by validate, plan and run."""


@dataclass(frozen=True)
class Case:
    """One broken input and what aligntune must answer."""

    id: str
    files: Mapping[str, Content]
    message: str
    """A regular expression the error output must match; `{dir}` is the user's folder."""
    commands: tuple[tuple[str, ...], ...] = EVERY_COMMAND
    exit_code: int = ExitCode.USER_INPUT
    env: Mapping[str, str] = field(default_factory=dict)


def tiny_data_file(algorithm: str) -> str:
    """The data file's name in the shipped tiny recipe of `algorithm`."""
    tiny = yaml.safe_load((TINY / f"{algorithm}.yaml").read_text(encoding="utf-8"))
    return Path(tiny["data"]["train"]["path"]).name


def recipe(algorithm: str = "sft", /, **sections: Any) -> str:
    """A valid recipe on the shipped tiny model and data, as YAML; `sections` replace parts."""
    data = tiny_data_file(algorithm)
    tree: dict[str, Any] = {
        "algorithm": {"name": algorithm},
        "model": {"name_or_path": str(TINY / "model")},
        "data": {"train": {"path": str(TINY / "data" / data)}, "max_length": 64},
        "training": {"max_steps": 2, "batch_size": 4},
    }
    if algorithm in ("grpo", "gspo", "dapo", "dr_grpo"):
        tree["algorithm"]["num_generations"] = 2
        tree["rewards"] = [{"function": "numeric_match", "params": {"column": "answer"}}]
    if algorithm == "ppo":
        tree["algorithm"]["reward_model"] = str(TINY / "model")
    tree.update(sections)
    return yaml.safe_dump(tree, sort_keys=False)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under `folder` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def write_files(folder: Path, files: Mapping[str, Content]) -> None:
    """Write a case's files under `folder`."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        value = content(folder) if callable(content) else content
        if isinstance(value, bytes):
            path.write_bytes(value)
        else:
            path.write_text(value, encoding="utf-8")


def run_aligntune(args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> int:
    """`aligntune ARGS` in this process; its exit code."""
    monkeypatch.setattr(sys, "argv", ["aligntune", *args])
    try:
        main()
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def check_case(
    case: Case,
    args: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Run one command of a case and assert the contract for bad input."""
    user, home = tmp_path / "user", tmp_path / "home"
    user.mkdir()
    home.mkdir()
    write_files(user, case.files)
    monkeypatch.chdir(user)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("ALIGNTUNE_DEBUG", raising=False)
    # No engine answers here: a case that got past the checks could not start a container.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    before = snapshot(user), snapshot(home)
    code = run_aligntune(args, monkeypatch)
    out, err = capsys.readouterr()
    shown = out + err
    assert code == case.exit_code, f"exit {code}, not {case.exit_code}:\n{shown}"
    assert "Traceback" not in shown, shown
    expected = case.message.format(dir=re.escape(str(user)))
    assert re.search(expected, err), f"{expected!r} not in:\n{err}"
    assert (snapshot(user), snapshot(home)) == before, "the command wrote or deleted files"
