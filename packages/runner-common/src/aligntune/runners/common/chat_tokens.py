"""Conversations tokenized for SFT with the labels aligntune chooses turn by turn.

`aligntune.core.trained_turns.trained_spans` finds the text of each trained turn by rendering the
conversation with the tokenizer's chat template up to that turn (the same rule the host's render
check applies); the tokens whose text starts inside a trained span carry labels. `input_ids` +
`labels` (-100 where nothing is learned) is the pre-tokenized shape TRL's SFTTrainer uses as it
is, so no `{% generation %}` markers are needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aligntune.core.conversations import TurnError
from aligntune.core.errors import DataError
from aligntune.core.trained_turns import trained_spans

IGNORED = -100
"""The label of a token the loss skips."""


def tokenize_conversation(
    tokenizer: Any,
    turns: Sequence[Mapping[str, Any]],
    tools: Any,
    user_turns: bool,
) -> dict[str, list[int]]:
    """`input_ids` and `labels` of one conversation: labels only on trained turns' tokens."""

    def render(part: list[dict[str, Any]], opening: bool) -> str:
        try:
            text = tokenizer.apply_chat_template(
                part, tools=tools, tokenize=False, add_generation_prompt=opening
            )
        except Exception as exc:  # the template is the user's (or the model's) code
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DataError(
                f"the chat template failed on it: {first[:200]}",
                hint="fix this row, or set model.chat_template to a template that renders it",
            ) from None
        return str(text)

    try:
        text, spans = trained_spans(render, turns, user_turns)
    except TurnError as exc:
        raise DataError(
            f"turn {exc.where}: {exc.what}",
            hint="set model.chat_template to a template that renders turns in order",
        ) from None
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORED
        for token, (begin, _) in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    return {"input_ids": ids, "labels": labels}
