"""Conversation turns in the shapes users bring (OpenAI messages, ShareGPT, content parts, tool
calls), read into one shape: `{role, content, train}` plus `tool_calls`, `name`, `tool_call_id`
where a turn has them.

The host check (`aligntune.core.data_rows`) and the runner's conversion
(`aligntune.runners.common.data`) both call `read_turns`, so a row that passes `validate` is the
row the runner trains on. A problem raises `TurnError` with where it is inside the value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

TargetRole = Literal["assistant", "system", "tool", "user", "tool_call"]
"""What a recipe's `roles` mapping may map a file's role names to; `tool_call` is an assistant
turn that calls tools (ShareGPT's `function_call`)."""

TurnField = Literal["role", "content"]
"""The parts of a turn a recipe's `fields` may rename."""

ROLE_NAMES: Mapping[str, str] = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "system": "system",
    "tool": "tool",
    "observation": "tool",
    "function_call": "tool_call",
}
"""The role names read without a mapping: OpenAI's and ShareGPT's (LLaMA-Factory's tags)."""

TURN_FIELDS: Mapping[str, Mapping[str, str]] = {
    "messages": {"role": "role", "content": "content"},
    "sharegpt": {"role": "from", "content": "value"},
}
"""The keys of a turn's role and text in each conversation style; `fields` in a recipe overrides."""

UNTRAINED_ROLES = frozenset({"system", "tool"})
"""Turns never trained: the system prompt and tool results are given, not generated."""


JSON_KINDS = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "object",
}
"""The JSON type of each type `json` decodes to (null aside), as Arrow names them."""


def kind_of(value: Any) -> str:
    """The JSON type of a decoded value: string, number, boolean, list, object, null."""
    return "null" if value is None else JSON_KINDS.get(type(value), type(value).__name__)


class TurnError(ValueError):
    """A turn that does not fit: `where` inside the value (`[2].content`), `what` is wrong."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what


@dataclass(frozen=True)
class TurnStyle:
    """How one source names a turn's parts: the role and text keys, and its role names."""

    role_key: str = "role"
    content_key: str = "content"
    roles: Mapping[str, str] = field(default_factory=lambda: dict(ROLE_NAMES))

    @classmethod
    def of(cls, style: str, fields: Mapping[TurnField, str], roles: Mapping[str, str]) -> TurnStyle:
        """The style `style` (messages or sharegpt) with a recipe's `fields` and `roles`."""
        keys = {**TURN_FIELDS[style], **{str(part): key for part, key in fields.items()}}
        return cls(keys["role"], keys["content"], {**ROLE_NAMES, **roles})


def _text(value: Any, where: str) -> str:
    """A turn's text: a string, or a list of text parts (`{type: text, text|value}`) joined."""
    if isinstance(value, str):
        return value
    if value is None:
        raise TurnError(where, "missing (null)")
    if not isinstance(value, list):
        raise TurnError(where, f"expected a string or a list of text parts, got a {kind_of(value)}")
    texts = []
    for index, part in enumerate(value):
        at = f"{where}[{index}]"
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise TurnError(at, "expected a content part {type: text, text: ...}")
        kind = part.get("type", "text")
        if kind != "text":
            raise TurnError(
                f"{at}.type",
                f"a {kind!r} part; aligntune trains text models, so content parts must be "
                "{type: text, text: ...}",
            )
        text = part.get("text", part.get("value"))
        if not isinstance(text, str):
            raise TurnError(at, "a text part needs `text` (or `value`) holding a string")
        texts.append(text)
    return "\n".join(texts)


def _trained_flag(turn: dict[str, Any], where: str) -> bool | None:
    """The turn's own say (`train: false`, `loss_weight: 0`), or None."""
    train = turn.get("train")
    if train is not None and not isinstance(train, bool):
        raise TurnError(f"{where}.train", "expected true or false")
    weight = turn.get("loss_weight")
    if weight is None:
        return train
    if isinstance(weight, bool) or weight not in (0, 1):
        raise TurnError(
            f"{where}.loss_weight",
            f"{weight!r}: a turn is trained (1) or not (0); no other weights",
        )
    return bool(weight) if train is None else train and bool(weight)


def _arguments(value: Any, where: str) -> dict[str, Any]:
    """A tool call's arguments: an object, or a JSON string holding one."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise TurnError(where, f"not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise TurnError(where, "expected an object of arguments (or a JSON string of one)")
    return value


def _call(value: Any, where: str) -> dict[str, Any]:
    """One tool call, OpenAI's `{type, function: {name, arguments}}` or a bare
    `{name, arguments}`, as `{type: function, function: {name, arguments: object}}`."""
    if not isinstance(value, dict):
        raise TurnError(where, "expected a tool call {name, arguments}")
    function = value.get("function", value)
    at = f"{where}.function" if "function" in value else where
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise TurnError(f"{at}.name", "a tool call needs the tool's name as a string")
    call: dict[str, Any] = {
        "type": "function",
        "function": {
            "name": function["name"],
            "arguments": _arguments(function.get("arguments", {}), f"{at}.arguments"),
        },
    }
    if isinstance(value.get("id"), str):
        call["id"] = value["id"]
    return call


def _calls(value: Any, where: str) -> list[dict[str, Any]]:
    """A turn's tool calls: one call or a list of them (a JSON string of either)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TurnError(where, f"a tool call that is not valid JSON ({exc.msg})") from None
    items = value if isinstance(value, list) else [value]
    if not items:
        raise TurnError(where, "an empty list of tool calls")
    return [_call(item, f"{where}[{index}]") for index, item in enumerate(items)]


def read_turn(turn: Any, style: TurnStyle, where: str) -> dict[str, Any]:
    """One turn in aligntune's shape; a TurnError says what does not fit."""
    if not isinstance(turn, dict):
        raise TurnError(where, f"expected a message object, got a {kind_of(turn)}")
    name = turn.get(style.role_key)
    if not isinstance(name, str):
        got = "missing" if name is None else f"a {kind_of(name)}, not a string"
        raise TurnError(f"{where}.{style.role_key}", f"{got}; each turn names its role")
    role = style.roles.get(name)
    if role is None:
        known = ", ".join(sorted(style.roles))
        raise TurnError(
            f"{where}.{style.role_key}",
            f"unknown role {name!r}; known roles: {known}; map others with the data "
            f"source's roles, e.g. roles: {{{name}: assistant}}",
        )
    content_at = f"{where}.{style.content_key}"
    raw = turn.get(style.content_key)
    out: dict[str, Any] = {"role": role}
    if role == "tool_call":
        out = {"role": "assistant", "content": "", "tool_calls": _calls(raw, content_at)}
    else:
        calls = turn.get("tool_calls")
        if calls:
            out["tool_calls"] = _calls(calls, f"{where}.tool_calls")
        out["content"] = "" if raw is None and calls else _text(raw, content_at)
        if not (calls or role == "system") and not out["content"].strip():
            raise TurnError(content_at, "empty")
    for key in ("name", "tool_call_id"):
        if isinstance(turn.get(key), str):
            out[key] = turn[key]
    flag = _trained_flag(turn, where)
    if flag and out["role"] in UNTRAINED_ROLES:
        given = f"a {out['role']} turn is never trained (it is given, not generated)"
        raise TurnError(where, given)
    out["train"] = flag
    return out


def read_turns(value: Any, style: TurnStyle, where: str = "") -> list[dict[str, Any]]:
    """A conversation (a list of turns) in aligntune's shape; `train` is None where the turn
    does not say (its role decides)."""
    if value is None:
        raise TurnError(where, "missing (null)")
    if not isinstance(value, list):
        raise TurnError(where, f"expected a list of messages, got a {kind_of(value)}")
    if not value:
        raise TurnError(where, "empty list of messages")
    return [read_turn(turn, style, f"{where}[{index}]") for index, turn in enumerate(value)]


def read_answer(value: Any, style: TurnStyle, where: str) -> list[dict[str, Any]]:
    """A ShareGPT preference answer: one turn object, or a list of turns."""
    if isinstance(value, dict):
        turns = [read_turn(value, style, where)]
    elif isinstance(value, list):
        turns = read_turns(value, style, where)
    else:
        shape = f"{{{style.role_key}, {style.content_key}}}"
        raise TurnError(
            where, f"expected a turn {shape} or a list of turns, got a {kind_of(value)}"
        )
    if turns[0]["role"] != "assistant":
        raise TurnError(where, f"an answer is an assistant turn, not a {turns[0]['role']} turn")
    return turns


def read_tools(value: Any, where: str = "") -> list[dict[str, Any]]:
    """The `tools` column: a list of JSON-schema tool objects, or a JSON string of one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TurnError(where, f"not valid JSON ({exc.msg})") from None
    if not isinstance(value, list) or not all(isinstance(tool, dict) for tool in value):
        raise TurnError(where, "expected a list of tool schemas (objects), or a JSON string of one")
    return value
