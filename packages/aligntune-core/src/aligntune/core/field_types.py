"""The recipe's field types that say more than Python's: numbers that YAML 1.1 may hand over as
text, and free-form text with its size limits (short names, paths, chat templates, prompts,
reward parameters). Each limit is far above what a real recipe needs and says itself in the error.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from aligntune.core.chat_templates import named_template, parse_problem, unknown_name_message

MAX_PATH_BYTES = 4096
"""The longest path the operating system opens (PATH_MAX)."""
MAX_PATH_PART_BYTES = 255
"""The longest file or folder name the file systems allow (NAME_MAX)."""
MAX_TEMPLATE_CHARS = 65_536
"""The longest chat template."""
MAX_PROMPT_CHARS = 16_384
"""The longest system prompt."""
MAX_PARAMS_CHARS = 16_384
"""The most text a reward's params may hold, written as JSON."""

_EXPONENT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+")


def _exponent_number(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` (no dot) as text; every user means the number."""
    return float(value) if isinstance(value, str) and _EXPONENT.fullmatch(value) else value


Number = Annotated[float, BeforeValidator(_exponent_number)]
"""A float: a number, or text in exponent form (`1e-4`); never a boolean (finite: `Section`)."""
Name = Annotated[str, Field(min_length=1, max_length=256)]
"""A short name: a revision, split, column, module or function."""


def check_path(value: str) -> str:
    """A path (or hub id) the operating system can take: no NUL, parts and whole within limits."""
    if "\0" in value:
        raise ValueError("a path cannot contain a NUL character")
    longest = max(len(part.encode()) for part in value.split("/"))
    if longest > MAX_PATH_PART_BYTES:
        raise ValueError(
            f"a path part of {longest} bytes; file and folder names are at most "
            f"{MAX_PATH_PART_BYTES}"
        )
    if len(value.encode()) > MAX_PATH_BYTES:
        raise ValueError(f"a path of {len(value.encode())} bytes; at most {MAX_PATH_BYTES}")
    return value


PathText = Annotated[str, Field(min_length=1), AfterValidator(check_path)]
"""A local path or hub id."""


def check_chat_template(value: str) -> str:
    """A known template's name (`chat_templates.TEMPLATE_NAMES`), or a Jinja chat template that
    renders the conversation and parses."""
    if named_template(value) is not None:
        return value
    if not ("{%" in value or "{{" in value):
        raise ValueError(unknown_name_message(value))
    if "messages" not in value:
        raise ValueError(
            "not a Jinja chat template: it never reads `messages`; give the template's text "
            "(a tokenizer_config.json's chat_template), or leave it unset to keep the tokenizer's"
        )
    problem = parse_problem(value)  # jinja2 is imported there: only for a recipe's template
    if problem:
        raise ValueError(problem)
    return value


def check_params_size(value: dict[str, Any]) -> dict[str, Any]:
    """Reward parameters are a few short values."""
    size = len(json.dumps(value, default=str))
    if size > MAX_PARAMS_CHARS:
        raise ValueError(f"{size} characters as JSON; at most {MAX_PARAMS_CHARS}")
    return value


ChatTemplate = Annotated[
    str, Field(max_length=MAX_TEMPLATE_CHARS), AfterValidator(check_chat_template)
]
"""A known chat template's name, or a Jinja chat template's text."""
SystemPrompt = Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
"""A system message."""
RewardParams = Annotated[dict[str, Any], Field(max_length=32), AfterValidator(check_params_size)]
"""A built-in reward's keyword arguments: at most 32, at most MAX_PARAMS_CHARS as JSON."""
