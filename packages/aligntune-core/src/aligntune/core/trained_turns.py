"""Which tokens of a conversation are trained: each turn's own flag and role decide, and the
spans are found by rendering the conversation with its chat template turn by turn, so any
template works, generation markers or not. The host's render check
(`aligntune.core.template_check`) and the runner's tokenizing (`runners.common.chat_tokens`)
both call `trained_spans`, so `plan --show-sample` shows what the runner trains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aligntune.core.conversations import UNTRAINED_ROLES, TurnError


def trains(turn: Mapping[str, Any], user_turns: bool) -> bool:
    """Whether a turn's tokens carry labels: its own flag, else assistant turns (and user turns
    with `user_turns`); system and tool turns never."""
    if turn["role"] in UNTRAINED_ROLES:
        return False
    if turn.get("train") is not None:
        return bool(turn["train"])
    return turn["role"] == "assistant" or (user_turns and turn["role"] == "user")


def template_turns(turns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Turns as a chat template reads them: aligntune's `train` flag and empty keys dropped."""
    return [{k: v for k, v in turn.items() if k != "train" and v is not None} for turn in turns]


Render = Callable[[list[dict[str, Any]], bool], str]
"""A chat template applied to turns, with (True) or without the opening of an assistant turn."""


def trained_spans(
    render: Render, turns: Sequence[Mapping[str, Any]], user_turns: bool
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation, and the character spans of the turns that are trained.

    The conversation is rendered once, and again up to each trained turn: a turn's span is the
    text its rendering adds (after the assistant header a generation prompt writes, without the
    whitespace that follows its end token). Any template works, generation markers or not, as
    long as a conversation's rendering starts with that of its first turns (a TurnError if not).
    """

    def text(upto: int, opening: bool) -> str:
        return render(template_turns(turns[:upto]), opening) if upto else ""

    full = text(len(turns), False)
    spans = []
    for index, turn in enumerate(turns):
        if not trains(turn, user_turns):
            continue
        before = text(index, turn["role"] == "assistant")
        upto = text(index + 1, False)
        if not (full.startswith(upto) and upto.startswith(before)):
            raise TurnError(
                f"[{index}]",
                "the chat template renders a conversation differently from its first turns, "
                "so its turns cannot be told apart for the loss",
            )
        end = len(upto.rstrip())
        if end > len(before):
            spans.append((len(before), end))
    return full, spans


def template_problem(template: str, uses_tools: bool, uses_calls: bool) -> str | None:
    """Why a chat template cannot render a conversation's tools or tool calls, else None.

    A template that never reads `tools` (or `tool_calls`) would drop them without a word.
    """
    missing = [
        name
        for name, used in (("tools", uses_tools), ("tool_calls", uses_calls))
        if used and name not in template
    ]
    if not missing:
        return None
    return (
        f"the data has {' and '.join(missing)}, but the model's chat template never reads "
        f"{' or '.join(missing)}: it cannot render them"
    )
