"""Built-in reward functions for the GRPO family, and the checks on a recipe's reward entries.

Every reward follows TRL's contract: called with keyword arguments `prompts`, `completions`,
`completion_ids`, every dataset column and `**kwargs`; returns one float (or None) per completion.
They are pure Python, so both runners use the same code and the host can check names and params.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, get_type_hints

from pydantic import TypeAdapter, ValidationError

from aligntune.core.errors import UserInputError

RewardFunction = Callable[..., list[float | None]]
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the content of a conversational completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def _last_number(text: str) -> float | None:
    matches = _NUMBER.findall(text)
    if not matches:
        return None
    try:
        return float(matches[-1].replace(",", ""))
    except ValueError:
        return None


def _column(kwargs: dict[str, Any], column: str, count: int) -> Sequence[Any]:
    if column not in kwargs:
        names = ", ".join(sorted(k for k in kwargs if k not in ("completion_ids", "trainer_state")))
        raise KeyError(f"reward needs dataset column {column!r}; columns passed: {names}")
    values = kwargs[column]
    return values if len(values) == count else [values[0]] * count


def exact_match(
    completions: list[Any], column: str = "answer", strip: bool = True, **kwargs: Any
) -> list[float | None]:
    """1.0 where the completion equals the row's `column` value, else 0.0."""
    targets = _column(kwargs, column, len(completions))
    out: list[float | None] = []
    for completion, target in zip(completions, targets, strict=True):
        text, gold = completion_text(completion), str(target)
        if strip:
            text, gold = text.strip(), gold.strip()
        out.append(1.0 if text == gold else 0.0)
    return out


def numeric_match(
    completions: list[Any], column: str = "answer", tolerance: float = 1e-6, **kwargs: Any
) -> list[float | None]:
    """1.0 where the completion's last number equals the row's `column` number, else 0.0."""
    targets = _column(kwargs, column, len(completions))
    out: list[float | None] = []
    for completion, target in zip(completions, targets, strict=True):
        got, gold = _last_number(completion_text(completion)), _last_number(str(target))
        out.append(
            1.0 if got is not None and gold is not None and abs(got - gold) <= tolerance else 0.0
        )
    return out


def contains(
    completions: list[Any],
    text: str | None = None,
    column: str | None = None,
    case_sensitive: bool = False,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 where the completion contains `text` (or the row's `column` value), else 0.0."""
    needles = _column(kwargs, column, len(completions)) if column else [text] * len(completions)
    out: list[float | None] = []
    for completion, needle in zip(completions, needles, strict=True):
        hay, pin = completion_text(completion), str(needle)
        if not case_sensitive:
            hay, pin = hay.lower(), pin.lower()
        out.append(1.0 if pin in hay else 0.0)
    return out


def format_regex(completions: list[Any], pattern: str, **kwargs: Any) -> list[float | None]:
    """1.0 where the whole completion matches the regular expression `pattern`, else 0.0."""
    compiled = re.compile(pattern, re.DOTALL)
    return [1.0 if compiled.fullmatch(completion_text(c).strip()) else 0.0 for c in completions]


def length_penalty(
    completions: list[Any], target_chars: int = 200, **kwargs: Any
) -> list[float | None]:
    """0 up to `target_chars` characters, then minus the excess as a fraction of the target."""
    return [-max(0, len(completion_text(c)) - target_chars) / target_chars for c in completions]


def overlong_penalty(
    completions: list[Any],
    completion_ids: list[list[int]],
    max_tokens: int,
    buffer_tokens: int,
    **kwargs: Any,
) -> list[float | None]:
    """DAPO's soft overlong punishment: 0 until `max_tokens - buffer_tokens`, falling to -1."""
    start = max_tokens - buffer_tokens
    return [
        0.0 if len(ids) <= start else -min(1.0, (len(ids) - start) / buffer_tokens)
        for ids in completion_ids
    ]


BUILTIN_REWARDS: dict[str, RewardFunction] = {
    "exact_match": exact_match,
    "numeric_match": numeric_match,
    "contains": contains,
    "format_regex": format_regex,
    "length_penalty": length_penalty,
    "overlong_penalty": overlong_penalty,
}

_CONTRACT = {"prompts", "completions", "completion_ids"}


def _builtin_params(function: RewardFunction) -> tuple[set[str], set[str]]:
    """(accepted, required) parameter names a recipe may set for a built-in reward."""
    accepted, required = set(), set()
    for param in inspect.signature(function).parameters.values():
        if param.kind is param.VAR_KEYWORD or param.name in _CONTRACT:
            continue
        accepted.add(param.name)
        if param.default is param.empty:
            required.add(param.name)
    return accepted, required


_PARAM_RANGES: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("numeric_match", "tolerance"): (lambda value: value >= 0, "at least 0"),
    ("length_penalty", "target_chars"): (lambda value: value > 0, "more than 0"),
    ("overlong_penalty", "buffer_tokens"): (lambda value: value > 0, "more than 0"),
    ("overlong_penalty", "max_tokens"): (lambda value: value > 0, "more than 0"),
}
"""The values a built-in reward's numeric parameters may take (a division by one, a distance)."""


def _check_param_values(function: str, params: dict[str, Any]) -> None:
    """Each param of a built-in has its annotated type and range (checked here, not when the
    runner first calls the reward)."""
    hints = get_type_hints(BUILTIN_REWARDS[function])
    for name, value in params.items():
        try:
            TypeAdapter(hints[name]).validate_python(value, strict=True)
        except ValidationError:
            wanted = getattr(hints[name], "__name__", str(hints[name]))
            raise ValueError(f"{function} {name}: expected {wanted}, got {value!r}") from None
        check, valid = _PARAM_RANGES.get((function, name), (lambda _: True, ""))
        if not check(value):
            raise ValueError(f"{function} {name}: {value!r}; it must be {valid}")
    if function == "overlong_penalty" and params["buffer_tokens"] > params["max_tokens"]:
        raise ValueError(
            f"overlong_penalty buffer_tokens ({params['buffer_tokens']}) is more than max_tokens "
            f"({params['max_tokens']}); the penalty starts buffer_tokens before max_tokens"
        )
    if function == "contains" and (params.get("text") is None) == (params.get("column") is None):
        raise ValueError("contains takes text (the same for every row) or column, one of the two")


def check_reward_spec(function: str, params: dict[str, Any]) -> None:
    """Raise ValueError unless `function` is a built-in with valid params or `module:function`."""
    if function in BUILTIN_REWARDS:
        accepted, required = _builtin_params(BUILTIN_REWARDS[function])
        unknown = sorted(set(params) - accepted)
        missing = sorted(required - set(params))
        if unknown:
            raise ValueError(
                f"{function} has no parameter(s) {', '.join(unknown)}; "
                f"it takes {', '.join(sorted(accepted)) or 'none'}"
            )
        if missing:
            raise ValueError(f"{function} needs parameter(s) {', '.join(missing)}")
        _check_param_values(function, params)
        if function == "format_regex":
            try:
                re.compile(params["pattern"])
            except re.error as exc:
                raise ValueError(f"format_regex pattern is not a valid regex: {exc}") from None
        return
    if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", function) is None:
        raise ValueError(
            f"unknown reward function {function!r}; use a built-in "
            f"({', '.join(BUILTIN_REWARDS)}) or 'module:function'"
        )
    if params:
        raise ValueError("params apply to built-in rewards only; bind them in your function")


def check_reward_signature(function: Callable[..., Any], name: str) -> None:
    """Raise UserInputError unless `function` can be called the way TRL calls rewards."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        raise UserInputError(
            f"reward {name}: its signature must accept **kwargs "
            "(TRL passes prompts, completions, completion_ids and every dataset column)"
        )
    named = {p.name for p in parameters if p.kind is not p.VAR_KEYWORD}
    if "completions" not in named and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
        raise UserInputError(f"reward {name}: its signature must take `completions`")


class RewardImportError(UserInputError):
    """A `module:function` reward whose module, or a module it imports, cannot be imported."""

    def __init__(self, message: str, missing: str | None) -> None:
        super().__init__(message)
        self.missing = missing
        """The module Python could not find, when that was the reason."""


def in_recipe_folder(module_name: str, base_dir: Path) -> bool:
    """Whether the top-level module or package `module_name` lives in `base_dir`."""
    top = module_name.partition(".")[0]
    return (base_dir / f"{top}.py").is_file() or (base_dir / top).is_dir()


def _import_from(module_name: str, base_dir: Path) -> ModuleType:
    """Import `module_name` with `base_dir` first on the path, writing no bytecode into it.

    A module of that name imported earlier from elsewhere (another recipe's folder) is forgotten
    first, so each recipe gets its own file. Afterwards the folder moves to the end of the path:
    what the reward imports later still resolves, but a stray `copy.py` beside the recipe never
    hides the standard library's module from the rest of the process.
    """
    folder = str(base_dir)
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    top = module_name.partition(".")[0]
    cached = getattr(sys.modules.get(top), "__file__", None)
    if cached and in_recipe_folder(top, base_dir) and not Path(cached).is_relative_to(base_dir):
        for name in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
            del sys.modules[name]
    importlib.invalidate_caches()
    writes = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # the recipe's folder is the user's: leave no __pycache__
    try:
        return importlib.import_module(module_name)
    finally:
        sys.dont_write_bytecode = writes
        sys.path.remove(folder)
        sys.path.append(folder)


def _import_problem(module_name: str, base_dir: Path, exc: BaseException) -> str:
    if isinstance(exc, ImportError):
        return (
            f"cannot import module {module_name!r} ({exc}); "
            f"looked in {base_dir} and the Python path"
        )
    if isinstance(exc, SyntaxError):
        return f"{exc.filename}:{exc.lineno}: syntax error: {exc.msg}"
    return f"importing {module_name!r} raised {type(exc).__name__}: {exc}"


def load_reward(function: str, params: dict[str, Any], base_dir: Path) -> RewardFunction:
    """The callable for one reward entry; `module:function` is imported from `base_dir` first."""
    if function in BUILTIN_REWARDS:
        bound = partial(BUILTIN_REWARDS[function], **params)
        bound.__name__ = function  # type: ignore[attr-defined]  # TRL names metrics after it
        return bound
    module_name, attr = function.split(":")
    try:
        module = _import_from(module_name, base_dir)
    except (Exception, SystemExit) as exc:  # the user's module runs here: any error is theirs
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        problem = _import_problem(module_name, base_dir, exc)
        raise RewardImportError(f"reward {function}: {problem}", missing) from None
    loaded = getattr(module, attr, None)
    if not callable(loaded):
        raise UserInputError(f"reward {function}: module {module_name!r} has no function {attr!r}")
    check_reward_signature(loaded, function)
    return loaded
