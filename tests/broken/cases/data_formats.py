"""Mistakes in the data shapes users bring from other tools (ShareGPT, content parts, tool calls,
mixtures of sources), each caught at its `file:line` before anything starts."""

import json
from typing import Any

from broken_harness import Case, recipe

D = r"data\.train: {dir}/d\.jsonl"
HUMAN = {"from": "human", "value": "What is 2 + 2?"}
GPT = {"from": "gpt", "value": "4"}
USER = {"role": "user", "content": "Weather in Paris?"}
ANSWER = {"role": "assistant", "content": "Sunny."}
NO = {"role": "assistant", "content": "No."}
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


def jsonl(*rows: Any) -> str:
    """JSON Lines of `rows`."""
    return "".join(json.dumps(row) + "\n" for row in rows)


def data(algorithm: str, *rows: Any, **train: Any) -> dict[str, str]:
    """A recipe of `algorithm` (on the tiny model) whose data is `rows`."""
    return {
        "recipe.yaml": recipe(algorithm, data={"train": {"path": "d.jsonl", **train}}),
        "d.jsonl": jsonl(*rows),
    }


def call(arguments: Any = '{"city": "Paris"}', **function: Any) -> dict[str, Any]:
    """An assistant turn calling the weather tool (OpenAI's shape)."""
    spec = {"name": "weather", "arguments": arguments, **function}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"type": "function", "function": spec}],
    }


SHAREGPT = [  # (id, the line-2 row of a ShareGPT SFT file, what is said of it)
    ("unknown-role", {"conversations": [HUMAN, {"from": "bot", "value": "4"}]},
     r"conversations\[1\]\.from: unknown role 'bot'; known roles: .*roles: \{{bot: assistant\}}"),
    ("value-missing", {"conversations": [HUMAN, {"from": "gpt"}]},
     r"conversations\[1\]\.value: missing \(null\)"),
    ("no-assistant-turn", {"conversations": [HUMAN]},
     "conversations: no assistant turn to train on"),
    ("function-call-not-json", {"conversations": [HUMAN, {"from": "function_call", "value": "{x"}]},
     r"conversations\[1\]\.value: a tool call that is not valid JSON"),
    ("tools-not-json", {"conversations": [HUMAN, GPT], "tools": "[{"}, "tools: not valid JSON"),
]  # fmt: skip

MESSAGES = [  # (id, the line-2 row of an OpenAI messages file, what is said of it)
    ("image-part", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": "x.png"}]},
        ANSWER]},
     r"messages\[0\]\.content\[1\]\.type: a 'image_url' part; aligntune trains text models"),
    ("loss-weight-half", {"messages": [USER, {**ANSWER, "loss_weight": 0.5}]},
     r"messages\[1\]\.loss_weight: 0\.5: a turn is trained \(1\) or not \(0\)"),
    ("train-flag-text", {"messages": [USER, {**ANSWER, "train": "no"}]},
     r"messages\[1\]\.train: expected true or false"),
    ("system-trained", {"messages": [{"role": "system", "content": "Be kind.", "train": True},
                                     USER, ANSWER]},
     r"messages\[0\]: a system turn is never trained"),
    ("nothing-trained", {"messages": [USER, {**ANSWER, "loss_weight": 0}]},
     "messages: no assistant turn to train on"),
    ("tool-arguments-not-json", {"messages": [USER, call("{city"), ANSWER]},
     r"messages\[1\]\.tool_calls\[0\]\.function\.arguments: not valid JSON"),
    ("tool-call-without-name", {"messages": [USER, call(name=7), ANSWER]},
     r"messages\[1\]\.tool_calls\[0\]\.function\.name: a tool call needs the tool's name"),
    ("tools-not-a-list", {"messages": [USER, ANSWER], "tools": {"name": "weather"}},
     "tools: expected a list of tool schemas"),
]  # fmt: skip

GOOD_SHAREGPT = {"conversations": [HUMAN, GPT]}
GOOD_MESSAGES = {"messages": [USER, ANSWER]}

CASES = [
    *(Case(f"sharegpt-{id}", data("sft", GOOD_SHAREGPT, row), f"{D}:2: {what}")
      for id, row, what in SHAREGPT),
    *(Case(f"parts-tools-{id}", data("sft", GOOD_MESSAGES, row), f"{D}:2: {what}")
      for id, row, what in MESSAGES),
    Case("sharegpt-preference-answer-from-user",
         data("dpo", {"conversations": [HUMAN], "chosen": HUMAN, "rejected": GPT}),
         f"{D}:1: chosen: an answer is an assistant turn, not a user turn"),
    Case("sharegpt-preference-answer-text",
         data("dpo", {"conversations": [HUMAN], "chosen": "4", "rejected": GPT}),
         f"{D}:1: chosen: expected a turn " + r"\{{from, value\}} or a list of turns, got a "
         "string"),
    Case("sharegpt-mapped-role-key-absent",
         data("sft", {"conversations": [HUMAN, GPT]}, fields={"role": "speaker"}),
         f"{D}:1: " + r"conversations\[0\]\.speaker: missing; each turn names its role"),
    Case("tools-template-cannot-render",
         data("sft", {"messages": [USER, call(), {"role": "tool", "content": "sunny"}, ANSWER],
                      "tools": TOOLS}),
         f"{D}: the data has tools and tool_calls, but the model's chat template never reads "
         "tools or tool_calls: it cannot render them; use a model whose chat template renders "
         "tools, or set model.chat_template to one that does"),
    Case("format-unknown", data("sft", GOOD_MESSAGES, format="chatml"),
         r"data\.train: format: unknown format 'chatml'; valid: auto, messages, sharegpt"),
    Case("roles-unknown-target", data("sft", GOOD_SHAREGPT, roles={"bot": "robot"}),
         r"data\.train\.roles\.bot: Input should be 'assistant', 'system', 'tool', 'user' or "
         r"'tool_call', got 'robot'"),
    Case("fields-unknown-part", data("sft", GOOD_SHAREGPT, fields={"speaker": "from"}),
         r"data\.train\.fields\.speaker"),
    Case("mixture-second-source-bad",
         {"recipe.yaml": recipe(data={"train": [{"path": "a.jsonl"}, {"path": "b.jsonl"}]}),
          "a.jsonl": jsonl(GOOD_MESSAGES), "b.jsonl": jsonl(GOOD_SHAREGPT, {"conversations": []})},
         r"data\.train\.1: {dir}/b\.jsonl:2: conversations: empty list of messages"),
    Case("mixture-key-misspelt",
         {"recipe.yaml": recipe(data={"train": [{"path": "a.jsonl", "wieght": 2}]}),
          "a.jsonl": jsonl(GOOD_MESSAGES)},
         r"data\.train\.0\.wieght: unknown key; did you mean 'weight'\?"),
    Case("mixture-weight-zero",
         {"recipe.yaml": recipe(data={"train": [{"path": "a.jsonl", "weight": 0}]}),
          "a.jsonl": jsonl(GOOD_MESSAGES)},
         r"data\.train\.0\.weight: Input should be greater than 0"),
    Case("mixture-empty", {"recipe.yaml": recipe(data={"train": []})},
         r"data\.train: List should have at least 1 item"),
    Case("mixture-preference-prompt-in-one-source",
         {"recipe.yaml": recipe("dpo", data={"train": [{"path": "a.jsonl"}, {"path": "b.jsonl"}]}),
          "a.jsonl": jsonl({"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}),
          "b.jsonl": jsonl({"chosen": [USER, ANSWER], "rejected": [USER, NO]})},
         r"data\.train: the pairs of data\.train\.0 have a prompt, those of data\.train\.1 do "
         r"not; the mixture's pairs all have a prompt or none do"),
    Case("mixture-text-with-conversations",
         {"recipe.yaml": recipe(data={"train": [{"path": "a.jsonl"}, {"path": "b.jsonl"}]}),
          "a.jsonl": jsonl({"text": "hello world"}), "b.jsonl": jsonl(GOOD_SHAREGPT)},
         r"data\.train: plain text cannot be mixed with conversations; the mixture has "
         r"sharegpt, text"),
]  # fmt: skip
