"""Mistakes with unpaired feedback (KTO's data): labels that are not booleans, one kind only,
conversations that do not end in the judged answer, and feedback and preference data swapped."""

import json
from typing import Any

from broken_harness import Case, recipe

D = r"data\.train: {dir}/d\.{ext}"
GOOD = {"prompt": "Say hi.", "completion": "Hi!", "label": True}
BAD = {"prompt": "Say hi.", "completion": "Go away.", "label": False}
CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def jsonl(*rows: Any) -> str:
    """JSON Lines."""
    return "".join(json.dumps(row) + "\n" for row in rows)


def kto(data: str, name: str = "d.jsonl", **train: Any) -> dict[str, str]:
    """A KTO recipe on `data`, written as `name`."""
    return {"recipe.yaml": recipe("kto", data={"train": {"path": name, **train}}), name: data}


def at(line: int | None, what: str, ext: str = "jsonl") -> str:
    """The message for `what` at `line` of d.EXT (None: the whole file)."""
    where = "" if line is None else f":{line}"
    return D.format(dir="{dir}", ext=ext) + f"{where}: {what}"


CASES = [
    Case(
        "feedback-label-string",
        kto(jsonl(GOOD, BAD, {**GOOD, "label": "true"})),
        at(3, r'label: expected a boolean \(true or false, without quotes\), got "true"'),
    ),
    Case(
        "feedback-label-number",
        kto(jsonl(GOOD, {**BAD, "label": 0})),
        at(2, "label: expected a boolean .*got 0"),
    ),
    Case(
        "feedback-label-null",
        kto(jsonl(GOOD, BAD, {**GOOD, "label": None})),
        at(3, "label: expected a boolean .*got null"),
    ),
    Case(
        "feedback-label-missing",
        kto(jsonl(GOOD, BAD, {"prompt": "p", "completion": "c"})),
        at(3, r"label: missing; the file is feedback data \(detected from line 1\)"),
    ),
    Case(
        "feedback-csv-label-word",
        kto("prompt,completion,label\nSay hi.,Hi!,true\nSay hi.,Go away.,no\n", "d.csv"),
        at(3, "label: expected true or false, got 'no'", "csv"),
    ),
    Case(
        "feedback-only-desirable",
        kto(jsonl(GOOD, GOOD, GOOD)),
        at(None, r"label: all 3 rows are desirable \(label true\).*add rows that are undesirable"),
    ),
    Case(
        "feedback-only-undesirable-csv",
        kto("prompt,completion,label\nSay hi.,Go away.,False\nSay hi.,No.,FALSE\n", "d.csv"),
        at(None, r"label: all 2 rows are undesirable \(label false\)", "csv"),
    ),
    Case(
        "feedback-messages-end-with-user",
        kto(jsonl({"messages": CHAT, "label": True}, {"messages": CHAT[:1], "label": False})),
        at(2, "messages: the last message is the completion the label judges, so it must be"),
    ),
    Case(
        "feedback-messages-no-prompt",
        kto(jsonl({"messages": CHAT, "label": True}, {"messages": CHAT[1:], "label": False})),
        at(2, "messages: only an assistant message: the completion needs a prompt before it"),
    ),
    Case(
        "preference-data-given-to-kto",
        kto(jsonl({"prompt": "p", "chosen": "a", "rejected": "b"})),
        at(None, r"cannot tell the data format.*these columns are preference data, which dpo"),
    ),
    Case(
        "feedback-data-given-to-dpo",
        {
            "recipe.yaml": recipe("dpo", data={"train": {"path": "d.jsonl"}}),
            "d.jsonl": jsonl(GOOD, BAD),
        },
        at(None, r"cannot tell the data format.*these columns are feedback data, which kto"),
    ),
    Case(
        "feedback-data-given-to-sft",
        {"recipe.yaml": recipe(data={"train": {"path": "d.jsonl"}}), "d.jsonl": jsonl(GOOD, BAD)},
        at(
            None,
            r"the label column rates each completion; these columns are feedback data, "
            r"which kto trains; read as prompt_completion data, every completion would be trained",
        ),
    ),
    Case(
        "feedback-format-declared-for-dpo",
        {
            "recipe.yaml": recipe("dpo", data={"train": {"path": "d.jsonl", "format": "feedback"}}),
            "d.jsonl": jsonl(GOOD, BAD),
        },
        at(None, "format 'feedback' cannot train this algorithm; accepted formats: preference"),
    ),
    Case(
        "kto-batch-of-one",
        {"recipe.yaml": recipe("kto", training={"batch_size": 1, "max_steps": 2})},
        r"training\.batch_size \(1\): kto needs at least 2 rows per batch",
    ),
    Case(
        "feedback-max-samples-takes-one-kind",
        kto(jsonl(GOOD, GOOD, GOOD, BAD, BAD), max_samples=3),
        r"data\.train \(first max_samples\): label: all 3 rows are desirable \(label true\).*\n"
        r"hint: add rows of the missing kind, or change max_samples",
    ),
    Case(
        "feedback-eval-fraction-holds-out-one-row",
        {
            "recipe.yaml": recipe(
                "kto", data={"train": {"path": "d.jsonl"}, "eval_fraction": 0.1, "max_length": 64}
            ),
            "d.jsonl": jsonl(*[GOOD, BAD] * 4),
        },
        r"data\.eval \(the rows data\.eval_fraction holds out for evaluation, drawn by "
        r"training\.seed\): label: all 1 rows are (un)?desirable",
    ),
]
