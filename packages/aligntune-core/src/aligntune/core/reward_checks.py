"""The checks of a recipe's rewards against its data: the column a built-in reads, and a call of
each user reward on the data's first rows.

A `module:function` reward is the user's code, and checking it means running it. The preflight
(`aligntune validate`, `plan` and `run`, on the host) imports it from the recipe's folder and
calls it, so a broken reward stops before any container starts; the runner calls it again in its
own environment (`load_rewards`) before it writes anything. A module that needs a package this
host lacks, or one installed elsewhere, is left to the runner.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import reprlib
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

from aligntune.core.data_check import DataSummary
from aligntune.core.errors import UserInputError
from aligntune.core.recipe import Recipe
from aligntune.core.rewards import (
    BUILTIN_REWARDS,
    RewardImportError,
    check_reward_signature,
    completion_text,
    in_recipe_folder,
    load_reward,
)

CALL_LIMIT_S = 60
"""How long one call of a user's reward (or its import) may take while it is checked."""


class _TooSlow(BaseException):
    """Raised into user code that overran CALL_LIMIT_S (a BaseException: `except Exception` in
    the user's code does not swallow it)."""


@contextmanager
def user_code(what: str) -> Iterator[None]:
    """Run user code with its prints on stderr (never mixed into `plan --json`) and, on the main
    thread, a time limit: a UserInputError naming `what` when it overruns."""

    def overran(signum: int, frame: FrameType | None) -> None:
        raise _TooSlow

    timed = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, overran) if timed else None
    if timed:
        signal.setitimer(signal.ITIMER_REAL, CALL_LIMIT_S)
    try:
        with redirect_stdout(sys.stderr):
            yield
    except _TooSlow:
        raise UserInputError(
            f"{what} did not return within {CALL_LIMIT_S} s", hint="check it for an endless loop"
        ) from None
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


SampleRows = Sequence[tuple[str, Mapping[str, Any]]]
"""(`path:line`, row under aligntune's column names), as `data_check.sample_rows` reads them."""

_NOT_COLUMNS = ("prompt", "completion", "completion_ids")
"""Dataset columns TRL does not pass to rewards as keywords."""

_STATE = SimpleNamespace(global_step=0, epoch=0.0, max_steps=1, num_train_epochs=1.0)
"""A stand-in for the `trainer_state` TRL passes."""

_ANY_TEXT = (
    "here each row's prompt stands in for its completion; in training a completion is whatever "
    "the model writes, so a reward must take any text"
)


def reward_column(function: str, params: Mapping[str, Any]) -> tuple[str, bool] | None:
    """(the dataset column a built-in reward reads, whether `params` set it), or None."""
    builtin = BUILTIN_REWARDS.get(function)
    parameter = inspect.signature(builtin).parameters.get("column") if builtin else None
    if parameter is None:
        return None
    column = params.get("column", parameter.default)
    return None if column is None else (column, "column" in params)


def _ignore(*args: Any, **kwargs: Any) -> None:
    """A stand-in for TRL's `log_extra` and `log_metric`."""


def _trl_arguments(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, Any]:
    """The keywords TRL calls a reward with, each row's prompt standing in for its completion;
    every column of the dataset, null where a row lacks it (as in the Arrow table)."""
    prompts = [row.get("prompt") for row in rows]
    completions: list[Any] = [
        [{"role": "assistant", "content": completion_text(p[-1:])}]
        if isinstance(p, list)
        else str(p or "")
        for p in prompts
    ]
    values = {key: [row.get(key) for row in rows] for key in columns if key not in _NOT_COLUMNS}
    return {
        "prompts": prompts,
        "completions": completions,
        "completion_ids": [list(completion_text(c).encode()) for c in completions],
        **values,
        "trainer_state": _STATE,
        "log_extra": _ignore,
        "log_metric": _ignore,
    }


def _result_problem(result: Any, count: int) -> str | None:
    """What is wrong with a reward's return value for `count` completions, or None."""
    if isinstance(result, str | bytes | Mapping) or not hasattr(result, "__len__"):
        return f"returned {type(result).__name__} {reprlib.repr(result)}, not a list"
    try:
        values = list(result)
    except Exception as exc:  # the user's own sequence type: whatever it raises is theirs
        return f"returned a {type(result).__name__} whose items cannot be read ({exc!r})"
    if len(values) != count:
        return f"returned {len(values)} value(s) for {count} completion(s)"
    for index, value in enumerate(values):
        if value is None:
            continue
        try:
            number = None if isinstance(value, str | bytes) else float(value)
        except Exception:
            number = None
        if number is None:
            return f"returned {type(value).__name__} {reprlib.repr(value)} for completion {index}"
        if not math.isfinite(number):
            return f"returned {number} for completion {index}"
    return None


def _user_line(exc: BaseException, function: Callable[..., Any]) -> str:
    """` (file:line)` of the user's code where `exc` was raised, or nothing."""
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # the first is the call below
    source = getattr(getattr(function, "__code__", None), "co_filename", None)
    frames = [f for f in frames if f.filename == source] or frames
    return f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


def _call(
    function: Callable[..., Any], rows: SampleRows, columns: Sequence[str], name: str
) -> None:
    where = rows[0][0] if len(rows) == 1 else f"{len(rows)} rows from {rows[0][0]}"
    try:
        with user_code(f"reward {name} on {where}"):
            result = function(**_trl_arguments([values for _, values in rows], columns))
    except SystemExit as exc:
        raise UserInputError(f"reward {name} called sys.exit({exc.code!r}) on {where}") from None
    except (KeyboardInterrupt, UserInputError):
        raise
    except BaseException as exc:  # the user's code: whatever it raises is theirs to fix
        raise UserInputError(
            f"reward {name} raised {type(exc).__name__}: {exc}{_user_line(exc, function)} "
            f"on {where}",
            hint=_ANY_TEXT,
        ) from None
    problem = _result_problem(result, len(rows))
    if problem is not None:
        raise UserInputError(
            f"reward {name} {problem} on {where}",
            hint="a reward returns a list with one finite float (or None) per completion",
        )


def check_reward_call(function: Callable[..., Any], rows: SampleRows, name: str) -> None:
    """Call a reward as TRL does, on each row alone and then on all of them; a UserInputError
    naming the row unless it returns one finite number or None per completion."""
    if inspect.iscoroutinefunction(function):
        return  # TRL awaits these on its own event loop; one run here could clash with the caller's
    columns = list(dict.fromkeys(key for _, values in rows for key in values))
    for row in rows:
        _call(function, [row], columns, name)
    if len(rows) > 1:
        _call(function, rows, columns, name)


def check_user_reward(function: str, base_dir: Path, rows: SampleRows) -> None:
    """Import a `module:function` reward from the recipe's folder and call it on `rows`."""
    module_name = function.partition(":")[0]
    top = module_name.partition(".")[0]
    beside = in_recipe_folder(module_name, base_dir)
    if not beside and top not in sys.modules and importlib.util.find_spec(top) is None:
        raise UserInputError(
            f"reward {function}: no module {top!r}: neither {top}.py nor a folder {top} in "
            f"{base_dir}, and no installed module of that name",
            hint="put the reward's module beside the recipe",
        )
    if not beside:
        _check_installed_reward(function)
        return
    try:
        with user_code(f"importing reward {function}"):
            loaded = load_reward(function, {}, base_dir)  # its signature is checked too
    except RewardImportError as exc:
        if exc.missing and exc.missing.partition(".")[0] != top:
            return  # it needs a package this host lacks; the runner checks it in its environment
        raise
    check_reward_call(loaded, rows, function)


def _check_installed_reward(function: str) -> None:
    """An installed module's reward: its signature, when the module imports here and has it (a
    Python API caller's own function may be no module attribute; the runner checks that)."""
    module_name, _, attr = function.partition(":")
    try:
        with user_code(f"importing reward {function}"):
            module = importlib.import_module(module_name)
    except (UserInputError, KeyboardInterrupt):
        raise
    except BaseException:  # it may import differently in the runner's environment
        return
    loaded = getattr(module, attr, None)
    if callable(loaded):
        check_reward_signature(loaded, function)


def reward_problems(
    recipe: Recipe, data: Mapping[str, DataSummary], rows: SampleRows
) -> list[UserInputError]:
    """Every reward problem, each message starting with the reward's field: a built-in's column
    missing from the `data` it reads, a user reward that cannot be imported or fails on `rows`."""
    problems = []
    for index, spec in enumerate(recipe.rewards):
        where = f"rewards[{index}]"
        read = reward_column(spec.function, spec.params)
        if read is not None:
            column, given = read
            default = "" if given else " (its default)"
            problems += [
                UserInputError(
                    f"{where}.params.column: {spec.function} reads column {column!r}{default}, "
                    f"which {field} ({summary.path}) does not have; columns found: "
                    f"{', '.join(sorted(summary.columns))}"
                )
                for field, summary in data.items()
                if column not in summary.columns
            ]
            problems += [
                UserInputError(
                    f"{where}.params.column: {spec.function} reads column {column!r}{default} in "
                    f"every row, and {field} ({summary.path}:{summary.gaps[column]}) has a row "
                    "without it (null or missing): that prompt would score 0 whatever the answer",
                    hint=f"give every row its {column}, or leave out the rows that have none",
                )
                for field, summary in data.items()
                if column in summary.columns and column in summary.gaps
            ]
        elif spec.function not in BUILTIN_REWARDS:
            try:
                check_user_reward(spec.function, recipe.base_dir, rows)
            except UserInputError as exc:
                problems.append(UserInputError(f"{where}.function: {exc}", hint=exc.hint))
    return problems
