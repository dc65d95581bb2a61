"""Small data files in the shapes other tools publish, written by the tests that use them.

ShareGPT (LLaMA-Factory's `sharegpt` and `dpo_en_demo` shape: `conversations` of `{from, value}`,
a `system` column, `tools` as a JSON string, `function_call` / `observation` turns), OpenAI
messages with content parts and tool calls, and a template that renders tools for the tiny model
(whose own template does not).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CAPITALS = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Peru", "Lima")]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

TOOL_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\\nTools: ' + (tools | tojson) + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}"
    "{{ '<call>' + c.function.name + ' ' + (c.function.arguments | tojson) + '</call>' }}"
    "{% endfor %}{% else %}{{ m['content'] }}{% endif %}{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML that renders `tools` and `tool_calls` (the tiny model's own template renders neither)."""


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """`rows` as JSON Lines at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def sharegpt_rows() -> list[dict[str, Any]]:
    """ShareGPT SFT rows: a system column, two exchanges."""
    return [
        {
            "conversations": [
                {"from": "human", "value": f"Capital of {country}?"},
                {"from": "gpt", "value": f"{city}."},
                {"from": "human", "value": "Sure?"},
                {"from": "gpt", "value": "Yes."},
            ],
            "system": "Answer briefly.",
        }
        for country, city in CAPITALS
    ]


def sharegpt_preference_rows() -> list[dict[str, Any]]:
    """ShareGPT preference rows: the prompt turns, then chosen/rejected as one turn each."""
    return [
        {
            "conversations": [{"from": "human", "value": f"Capital of {country}?"}],
            "chosen": {"from": "gpt", "value": f"{city}."},
            "rejected": {"from": "gpt", "value": "Ask someone else."},
        }
        for country, city in CAPITALS
    ]


def content_part_rows() -> list[dict[str, Any]]:
    """OpenAI-style content parts (`text` and `value`), the first answer marked untrained."""

    def text(value: str) -> list[dict[str, str]]:
        return [{"type": "text", "text": value}]

    return [
        {
            "messages": [
                {"role": "user", "content": text(f"Capital of {country}?")},
                {"role": "assistant", "content": text("Let me think."), "loss_weight": 0},
                {"role": "user", "content": [{"type": "text", "value": "Well?"}]},
                {"role": "assistant", "content": text(f"{city}."), "loss_weight": 1},
            ]
        }
        for country, city in CAPITALS
    ]


def openai_tool_rows() -> list[dict[str, Any]]:
    """OpenAI tool calling: `tools` as a list, `tool_calls` with JSON-string arguments, `tool`."""
    return [
        {
            "messages": [
                {"role": "user", "content": f"Weather in {city}?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": json.dumps({"city": city}),
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'},
                {"role": "assistant", "content": f"Clear in {city}."},
            ],
            "tools": [WEATHER_TOOL],
        }
        for _, city in CAPITALS
    ]


def sharegpt_tool_rows() -> list[dict[str, Any]]:
    """ShareGPT tool calling (LLaMA-Factory's glaive shape): `tools` as a JSON string,
    `function_call` and `observation` turns."""
    return [
        {
            "conversations": [
                {"from": "human", "value": f"Weather in {city}?"},
                {
                    "from": "function_call",
                    "value": json.dumps({"name": "get_weather", "arguments": {"city": city}}),
                },
                {"from": "observation", "value": '{"sky": "clear"}'},
                {"from": "gpt", "value": f"Clear in {city}."},
            ],
            "tools": json.dumps([WEATHER_TOOL]),
        }
        for _, city in CAPITALS
    ]
