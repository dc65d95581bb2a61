"""Conversations tokenized for SFT with the labels aligntune chooses turn by turn.

The chat template renders the conversation once, and again up to each trained turn: the text a
turn adds is what the template writes for it, so the model learns exactly the tokens of its own
turns (the assistant header that opens a turn stays a prompt). Any template works, with or
without `{% generation %}` markers, as long as rendering a conversation starts with the
rendering of its first turns, which chat templates do. `input_ids` + `labels` (-100 where
nothing is learned) is the pre-tokenized shape TRL's SFTTrainer uses as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aligntune.core.conversations import trains
from aligntune.core.errors import DataError

IGNORED = -100
"""The label of a token the loss skips."""


def template_turns(turns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Turns as a chat template reads them: aligntune's `train` flag and empty keys dropped."""
    return [{k: v for k, v in turn.items() if k != "train" and v is not None} for turn in turns]


def _render(tokenizer: Any, turns: Sequence[Mapping[str, Any]], tools: Any, opening: bool) -> str:
    if not turns:
        return ""
    text = tokenizer.apply_chat_template(
        template_turns(turns), tools=tools, tokenize=False, add_generation_prompt=opening
    )
    return str(text)


def trained_spans(
    tokenizer: Any, turns: Sequence[Mapping[str, Any]], tools: Any, user_turns: bool
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation, and the character spans of the turns that are trained."""
    full = _render(tokenizer, turns, tools, opening=False)
    spans = []
    for index, turn in enumerate(turns):
        if not trains(turn, user_turns):
            continue
        before = _render(tokenizer, turns[:index], tools, opening=turn["role"] == "assistant")
        upto = _render(tokenizer, turns[: index + 1], tools, opening=False)
        if not (full.startswith(upto) and upto.startswith(before)):
            raise DataError(
                "the chat template renders a conversation differently from its first turns "
                f"(turn {index}), so its turns cannot be told apart for the loss",
                hint="set model.chat_template to a template that renders turns in order",
            )
        # Whitespace after a turn's end token belongs to no turn: it is not learned.
        end = len(upto.rstrip())
        if end > len(before):
            spans.append((len(before), end))
    return full, spans


def tokenize_conversation(
    tokenizer: Any,
    turns: Sequence[Mapping[str, Any]],
    tools: Any,
    user_turns: bool,
) -> dict[str, list[int]]:
    """`input_ids` and `labels` of one conversation: labels only on trained turns' tokens."""
    text, spans = trained_spans(tokenizer, turns, tools, user_turns)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORED
        for token, (begin, _) in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    return {"input_ids": ids, "labels": labels}
