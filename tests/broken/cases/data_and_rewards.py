"""Mistakes in a recipe's data, reward functions and model folder, caught before anything starts:
every row of a local data file, a built-in reward's column, a user reward imported and called on
the data's first rows, and the model folder's tokenizer files."""

import io
import json
import re
from pathlib import Path
from typing import Any

from broken_harness import TINY, Case, recipe

GOOD_PROMPTS = [{"prompt": f"What is {n} + 1?", "answer": str(n + 1)} for n in range(4)]
CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
D = r"data\.train: {dir}/d\.jsonl"
R = r"rewards\[0\]\.function: reward "


def jsonl(*rows: Any) -> str:
    """JSON Lines: dicts and lists are dumped, strings are written as they are."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def chat(*rows: Any) -> str:
    """A chat file whose first row is sound, then `rows`."""
    return jsonl({"messages": CHAT}, *rows)


def turn(role: Any = "user", content: Any = "Hi") -> dict[str, Any]:
    """One chat message."""
    return {"role": role, "content": content}


def sft(data: Any, name: str = "d.jsonl", **train: Any) -> dict[str, Any]:
    """An SFT recipe on `data`, written as `name`."""
    return {"recipe.yaml": recipe(data={"train": {"path": name, **train}}), name: data}


def dpo(*rows: Any) -> dict[str, str]:
    """A DPO recipe on `rows`."""
    return {
        "recipe.yaml": recipe("dpo", data={"train": {"path": "d.jsonl"}}),
        "d.jsonl": jsonl(*rows),
    }


def grpo(data: str = jsonl(*GOOD_PROMPTS), rewards: Any = None, **files: str) -> dict[str, str]:
    """A GRPO recipe on `data` with `rewards` (default: numeric_match on `answer`)."""
    rewards = rewards or [{"function": "numeric_match", "params": {"column": "answer"}}]
    text = recipe("grpo", data={"train": {"path": "d.jsonl"}}, rewards=rewards)
    return {"recipe.yaml": text, "d.jsonl": data, **files}


def parquet(**columns: list[Any]) -> Any:
    """A parquet file's bytes, made when the case runs (pyarrow comes with `datasets`)."""

    def make(_: Path) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(pa.table(columns), buffer)
        return buffer.getvalue()

    return make


def score(returns: str, head: str = "") -> str:
    """A reward module whose `score(completions, **kwargs)` returns `returns`."""
    return f"{head}def score(completions, **kwargs):\n    return {returns}\n"


def model_with(*names: str) -> dict[str, Any]:
    """A model folder holding the tiny model's config.json and empty files `names`."""
    config = (TINY / "model" / "config.json").read_text(encoding="utf-8")
    files: dict[str, Any] = {"model/config.json": config, **{f"model/{n}": "{}" for n in names}}
    return {"recipe.yaml": recipe(model={"name_or_path": "./model"}), **files}


CHAT_ROWS = [  # (id, the second row of a chat file, what is said of line 2)
    ("invalid-json-line", '{"messages": [}', "invalid JSON"),
    ("row-is-a-list", [1, 2], "expected a JSON object, got a list"),
    ("row-is-a-string", '"hello"', "expected a JSON object, got a string"),
    ("messages-null", {"messages": None}, r"messages: missing \(null\)"),
    ("messages-empty", {"messages": []}, "messages: empty list of messages"),
    ("messages-string", {"messages": "Hi"}, "messages: expected a list of messages, got a string"),
    ("message-not-object", {"messages": ["Hi"]}, r"messages\[0\]: expected a message object"),
    ("unknown-role", {"messages": [turn(), turn("bot")]},
     r"messages\[1\]\.role: unknown role 'bot'; known roles: assistant, function_call, gpt, "
     r"human, observation, system, tool, user; map others with the data source's roles, "
     r"e\.g\. roles: \{{bot: assistant\}}"),
    ("role-missing", {"messages": [{"content": "Hi"}]}, r"messages\[0\]\.role: missing"),
    ("role-number", {"messages": [turn(1)]}, r"messages\[0\]\.role: a number, not a string"),
    ("content-null", {"messages": [turn(), turn("assistant", None)]},
     r"messages\[1\]\.content: missing \(null\)"),
    ("content-empty", {"messages": [turn(content="  ")]}, r"messages\[0\]\.content: empty"),
    ("content-number", {"messages": [turn(content=42)]},
     r"messages\[0\]\.content: expected a string or a list of text parts, got a number"),
    ("content-part-without-text", {"messages": [turn(content=[{"type": "text"}])]},
     r"messages\[0\]\.content\[0\]: a text part needs `text` \(or `value`\) holding a string"),
    ("mixed-formats", {"text": "plain"},
     r"messages: missing; the file is messages data \(detected from line 1\).*looks like text"),
]  # fmt: skip

ROWS = [  # (id, files, line: what is said of it)
    ("truncated-last-line", sft(chat() + '{"messages": [{"role": "user", "cont'),
     "2: invalid JSON: .*the file ends inside this line: was it completely written"),
    ("nan", grpo(jsonl(*GOOD_PROMPTS, '{"prompt": "p", "answer": NaN}')),
     "5: answer: NaN is not valid JSON; write null or a number"),
    ("infinity", grpo(jsonl('{"prompt": "p", "answer": -Infinity}')),
     "1: answer: -Infinity is not valid JSON"),
    ("lone-surrogate", sft(chat() + '{"messages": [{"role": "user", "content": "\\ud83d"}]}\n'),
     r"2: messages\[0\]\.content: a lone surrogate escape .* is not text"),
    ("byte-order-mark-inside", sft(chat() + "\ufeff" + chat()),
     r"2: a byte-order mark \(U\+FEFF\) starts this line, as when files saved with one are "
     r"joined"),
    ("not-utf8", sft(chat().encode() + b'{"messages": "\xff"}\n'),
     r"2: not UTF-8 text \(byte 0xff at byte 15 of the line\)"),
    ("problem-past-the-old-preview",
     sft(chat(*[{"messages": CHAT}] * 4998, {"messages": [turn("bot")]})),
     r"5000: messages\[0\]\.role: unknown role 'bot'"),
    ("many-problems-counted", sft(chat(*[{"messages": []}] * 30)),
     r"21: messages: empty list of messages\n.*10 more problem\(s\) not shown"),
    ("completion-empty", sft(jsonl({"prompt": "p", "completion": "c"},
                                   {"prompt": "p", "completion": ""})), "2: completion: empty"),
    ("completion-number", sft(jsonl({"prompt": "p", "completion": 7})),
     "1: completion: expected a string or a list of messages, got a number"),
    ("alpaca-instruction-null", sft(jsonl({"instruction": None, "output": "o"})),
     r"1: instruction: missing \(null\)"),
    ("text-blank", sft(jsonl({"text": "t"}, {"text": " \n "})), "2: text: empty"),
    ("text-declared-missing", sft(jsonl({"text": "t"}, {"txt": "t"}), format="text"),
     r"2: text: missing; the file is text data \(as the recipe declares\)"),
    ("chosen-equals-rejected", dpo({"prompt": "p", "chosen": "a", "rejected": "b"},
                                   {"prompt": "p", "chosen": "same", "rejected": "same"}),
     "2: chosen and rejected are identical; such a pair carries no preference"),
    ("preference-prompt-missing-in-a-row", dpo({"prompt": "p", "chosen": "a", "rejected": "b"},
                                               {"chosen": "c", "rejected": "d"}),
     "2: prompt: missing here, but line 1 has one; give every pair a prompt, or none"),
    ("preference-prompt-null-then-set", dpo({"prompt": None, "chosen": "a", "rejected": "b"},
                                            {"prompt": "p", "chosen": "c", "rejected": "d"}),
     "2: prompt: set here, but line 1 has none"),
    ("preference-answer-ends-with-user", dpo({"prompt": [turn()], "chosen": [turn()],
                                              "rejected": [turn("assistant", "Bye")]}),
     "1: chosen: the answer ends with a user turn; it must end with the assistant's"),
    ("preference-prompt-turns-answers-text", dpo({"prompt": [turn()], "chosen": "a",
                                                  "rejected": "b"}),
     "1: chosen, rejected: text, but prompt: turns; the trainer joins a row's prompt and "
     "answers, so they are all text or all turns"),
    ("completion-turns-prompt-text", sft(jsonl({"prompt": "Hi",
                                               "completion": [turn("assistant")]})),
     "1: prompt: text, but completion: turns"),
    ("rejected-null", dpo({"prompt": "p", "chosen": "a", "rejected": None}),
     r"1: rejected: missing \(null\)"),
    ("chosen-bad-turns", dpo({"prompt": "p", "chosen": [{"text": "a"}], "rejected": "b"}),
     r"1: chosen\[0\]\.role: missing"),
    ("prompt-empty", grpo(jsonl(*GOOD_PROMPTS, {"prompt": "", "answer": "1"})),
     "5: prompt: empty"),
    ("prompt-number", grpo(jsonl({"prompt": 3, "answer": "1"})),
     "1: prompt: expected a string or a list of messages, got a number"),
    ("column-type-changes", grpo(jsonl({"prompt": "p", "answer": 2},
                                       {"prompt": "q", "answer": "2"})),
     "2: answer: a string here but a number in line 1; a column holds one type in every row"),
    ("column-bool-then-number", grpo(jsonl({"prompt": "p", "answer": "1", "ok": True},
                                           {"prompt": "q", "answer": "2", "ok": 1})),
     "2: ok: a number here but a boolean in line 1"),
]  # fmt: skip

OTHER_FILES = [  # (id, data, file name, what is said)
    ("blank-lines-only", "\n\n  \n", "d.jsonl", ": data file has no rows"),
    ("csv-too-many-values", "instruction,output\nsay hi,hi\nsay,bye,extra\n", "d.csv",
     ":3: 3 values for 2 header columns"),
    ("csv-header-twice", "prompt,completion,prompt\np,c,p\n", "d.csv",
     r":1: column\(s\) prompt appear more than once in the header"),
    ("csv-empty-cell", "instruction,output\nsay hi,hi\n,bye\n", "d.csv", ":3: instruction: empty"),
    ("csv-not-utf8", b"text\nfine\ncaf\xe9\n", "d.csv", r":3: not UTF-8 text \(byte 0xe9"),
    ("csv-messages-as-text", 'messages\n"[{""role"": ""user""}]"\n', "d.csv",
     ":2: messages: expected a list of messages, got a string"),
    ("json-list-bad-row", '[\n  {"text": "a"},\n  {"text": 5}\n]\n', "d.json",
     ":3: text: expected a string, got a number"),
    ("json-list-trailing-comma", '[\n  {"text": "a"},\n]\n', "d.json",
     ":3: invalid JSON: Expecting value"),
    ("json-list-not-objects", '[{"text": "a"}, ["b"]]', "d.json",
     ":1: expected a JSON object, got a list"),
    ("parquet-wrong-columns", parquet(question=["q"], reply=["r"]), "d.parquet",
     ": cannot tell the data format; columns found: question, reply"),
    ("parquet-no-rows", parquet(text=[]), "d.parquet", ": data file has no rows"),
    ("parquet-not-parquet", "text\nhello\n", "d.parquet", ": not a parquet file"),
    ("parquet-cut-short", lambda d: parquet(text=["a"])(d)[:-20], "d.parquet",
     ": not a parquet file"),
]  # fmt: skip

USER_REWARDS = [  # (module, its text, what is said of the reward `module:score`)
    ("no_function", "def other(**kwargs):\n    pass\n", ": module 'no_function' has no function"),
    ("not_callable", "score = 3\n", ": module 'not_callable' has no function 'score'"),
    ("syntax_error", "def score(**kwargs)\n    return []\n",
     r": {dir}/syntax_error\.py:1: syntax error"),
    ("import_raises", "raise RuntimeError('no GPU')\n",
     ": importing 'import_raises' raised RuntimeError: no GPU"),
    ("import_exits", "import sys\nsys.exit(3)\n",
     ": importing 'import_exits' raised SystemExit: 3"),
    ("no_kwargs", "def score(completions):\n    return []\n",
     r": its signature must accept \*\*kwargs"),
    ("raises", score("[1 / 0]"),
     r" raised ZeroDivisionError: division by zero \(raises\.py:2\) on {dir}/d\.jsonl:1"),
    ("raises_on_row_3", "def score(completions, answer, **kwargs):\n"
                        "    return [1.0 / (int(a) - 3) for a in answer]\n",
     r" raised ZeroDivisionError: .* on {dir}/d\.jsonl:3"),
    ("calls_exit", score("sys.exit(2)", "import sys\n"),
     r" called sys\.exit\(2\) on {dir}/d\.jsonl:1"),
    ("wrong_length", score("[1.0]"),
     r" returned 1 value\(s\) for 4 completion\(s\) on 4 rows from {dir}/d\.jsonl:1"),
    ("returns_nan", score("[float('nan')] * len(completions)"),
     r" returned nan for completion 0 on {dir}/d\.jsonl:1"),
    ("returns_strings", score("['1'] * len(completions)"), " returned str '1' for completion 0"),
    ("returns_scalar", score("1.0"), r" returned float 1\.0, not a list"),
    ("returns_none", score("None"), " returned NoneType None, not a list"),
    ("reads_missing_column", score("[float(s) for s in kwargs['gold']]"),
     r" raised KeyError: 'gold' \(reads_missing_column\.py:2\)"),
]  # fmt: skip

COLUMN = r"rewards\[0\]\.params\.column: "
REWARDS = [
    Case("reward-module-missing", grpo(rewards=[{"function": "no_such_rewards:score"}]),
         R + r"no_such_rewards:score: no module 'no_such_rewards': neither no_such_rewards\.py "
         r"nor a folder no_such_rewards in {dir}"),
    Case("reward-column-missing",
         grpo(rewards=[{"function": "numeric_match", "params": {"column": "solution"}}]),
         COLUMN + r"numeric_match reads column 'solution', which data\.train \({dir}/d\.jsonl\) "
         r"does not have; columns found: answer, prompt"),
    Case("reward-default-column-missing",
         grpo(jsonl({"prompt": "p", "solution": "1"}), [{"function": "exact_match"}]),
         COLUMN + r"exact_match reads column 'answer' \(its default\), which data\.train"),
    Case("reward-contains-column-missing",
         grpo(rewards=[{"function": "contains", "params": {"column": "keyword"}}]),
         COLUMN + r"contains reads column 'keyword'"),
    Case("reward-column-null-in-a-row",
         grpo(jsonl(*GOOD_PROMPTS, {"prompt": "What is 9 + 1?", "answer": None})),
         COLUMN + r"numeric_match reads column 'answer' in every row, and data\.train "
         r"\({dir}/d\.jsonl:5\) has a row without it \(null or missing\)"),
    Case("reward-column-absent-from-first-row",
         grpo(jsonl({"prompt": "What is 9 + 1?"}, *GOOD_PROMPTS)),
         COLUMN + r"numeric_match reads column 'answer' in every row, and data\.train "
         r"\({dir}/d\.jsonl:1\) has a row without it"),
    Case("reward-column-missing-in-eval",
         {"recipe.yaml": recipe("grpo", data={"train": {"path": "d.jsonl"},
                                              "eval": {"path": "e.jsonl"}}),
          "d.jsonl": jsonl(*GOOD_PROMPTS), "e.jsonl": jsonl({"prompt": "p", "gold": "1"})},
         COLUMN + r"numeric_match reads column 'answer', which data\.eval \({dir}/e\.jsonl\)"),
]  # fmt: skip

RECIPE_AND_DATA = [
    Case("data-eval-fraction-holds-out-nothing",
         {"recipe.yaml": recipe(data={"train": {"path": "d.jsonl"}, "eval_fraction": 0.01}),
          "d.jsonl": chat(*[{"messages": CHAT}] * 9)},
         r"data\.eval_fraction: 0\.01 of the 10 training rows holds out 0 for evaluation and "
         r"leaves 10 to train on; each needs at least one row\nhint: raise data\.eval_fraction"),
    Case("data-eval-fraction-of-max-samples",
         {"recipe.yaml": recipe(data={"train": {"path": "d.jsonl", "max_samples": 2},
                                      "eval_fraction": 0.2}),
          "d.jsonl": chat(*[{"messages": CHAT}] * 99)},
         r"data\.eval_fraction: 0\.2 of the 2 training rows holds out 0"),
    Case("data-system-prompt-on-plain-text",
         {"recipe.yaml": recipe(data={"train": {"path": "d.jsonl"}, "system_prompt": "Be kind."}),
          "d.jsonl": jsonl({"text": "once upon a time"})},
         r"data\.system_prompt: data\.train \({dir}/d\.jsonl\) is plain text, which has no turns"),
    Case("mixture-column-types-differ",
         grpo(jsonl(*GOOD_PROMPTS), **{"recipe.yaml": recipe(
             "grpo", data={"train": [{"path": "d.jsonl"}, {"path": "e.jsonl"}]}),
             "e.jsonl": jsonl({"prompt": "What is 1 + 1?", "answer": 2})}),
         r"data\.train\.1: {dir}/e\.jsonl: column answer holds a number, but in data\.train\.0 "
         r"\({dir}/d\.jsonl\) a string; .*\nhint: write answer as a string in every source"),
]  # fmt: skip

NO_TEMPLATE = r"model\.name_or_path: \./model has no chat template, and "


def untemplated(**sections: Any) -> dict[str, Any]:
    """A recipe on a copy of the tiny model without its chat template."""
    files = {
        f"model/{p.name}": p.read_bytes()
        for p in (TINY / "model").iterdir()
        if p.is_file() and p.name != "chat_template.jinja"
    }
    return {"recipe.yaml": recipe(model={"name_or_path": "./model"}, **sections), **files}


TEMPLATES = [
    Case("model-without-template-conversations", untemplated(),
         NO_TEMPLATE + r"data\.train \(.*/sft\.jsonl\) holds conversations: only a chat "
         r"template renders them\nhint: set model\.chat_template"),
    Case("model-without-template-system-prompt",
         {**untemplated(data={"train": {"path": "d.jsonl"}, "system_prompt": "Be kind."}),
          "d.jsonl": jsonl({"prompt": "p", "completion": "c"})},
         NO_TEMPLATE + r"data\.system_prompt is set"),
    Case("model-without-template-preference-turns",
         {**untemplated(data={"train": {"path": "d.jsonl"}}, algorithm={"name": "dpo"}),
          "d.jsonl": jsonl({"prompt": [turn()], "chosen": [turn("assistant", "Hello")],
                            "rejected": [turn("assistant", "Go away")]})},
         NO_TEMPLATE + r"data\.train \({dir}/d\.jsonl\) holds conversations"),
]  # fmt: skip

BUILTIN_PARAMS = [  # (id, a built-in reward entry, what is said of rewards.0)
    ("tolerance-text", {"function": "numeric_match", "params": {"tolerance": "1e-3"}},
     r"numeric_match tolerance: expected float, got '1e-3'"),
    ("tolerance-negative", {"function": "numeric_match", "params": {"tolerance": -0.5}},
     r"numeric_match tolerance: -0\.5; it must be at least 0"),
    ("strip-word", {"function": "exact_match", "params": {"strip": "yes"}},
     r"exact_match strip: expected bool, got 'yes'"),
    ("target-chars-zero", {"function": "length_penalty", "params": {"target_chars": 0}},
     r"length_penalty target_chars: 0; it must be more than 0"),
    ("overlong-buffer-past-max", {"function": "overlong_penalty",
                                  "params": {"max_tokens": 16, "buffer_tokens": 64}},
     r"overlong_penalty buffer_tokens \(64\) is more than max_tokens \(16\); the penalty .*"),
    ("contains-nothing", {"function": "contains"},
     r"contains takes text \(the same for every row\) or column, one of the two"),
]  # fmt: skip

TOKENIZER = r"model\.name_or_path: {dir}/model has no tokenizer files: it needs one of "
TOKENIZERS = [
    Case("tokenizer-files-missing", model_with("model.safetensors"),
         TOKENIZER + r"tokenizer\.json, tokenizer\.model, vocab\.json with merges\.txt\n"),
    Case("tokenizer-vocab-without-merges", model_with("vocab.json"),
         TOKENIZER + r".*; it has only vocab\.json"),
    Case("tokenizer-config-only", model_with("tokenizer_config.json"),
         TOKENIZER + r".*; it has only tokenizer_config\.json"),
]  # fmt: skip

CASES = [
    *(Case(f"data-{id}", sft(chat(row)), f"{D}:2: {what}") for id, row, what in CHAT_ROWS),
    *(Case(f"data-{id}", files, f"{D}:{what}") for id, files, what in ROWS),
    *(
        Case(f"data-{id}", sft(data, name), rf"data\.train: {{dir}}/{re.escape(name)}{what}")
        for id, data, name, what in OTHER_FILES
    ),
    Case(
        "data-mapped-column-absent",
        sft(jsonl({"q": "q", "reply": "r"}), columns={"prompt": "q", "completion": "answer"}),
        D + r": mapped column\(s\) not in the file: completion -> answer; columns found: q, reply",
    ),
    Case(
        "data-two-columns-mapped-to-one",
        sft(jsonl({"q": "q"}), columns={"prompt": "q", "completion": "q"}),
        r"data\.train: columns: prompt -> q, completion -> q: one column of the file cannot be two "
        r"of aligntune's \(line \d+\)",
    ),
    Case(
        "data-eval-file-bad",
        {
            "recipe.yaml": recipe(data={"train": {"path": "t.jsonl"}, "eval": {"path": "e.jsonl"}}),
            "t.jsonl": chat(),
            "e.jsonl": chat({"messages": [turn("robot")]}),
        },
        r"data\.eval: {dir}/e\.jsonl:2: messages\[0\]\.role: unknown role 'robot'",
    ),
    *(
        Case(f"reward-{module.replace('_', '-')}",
             grpo(rewards=[{"function": f"{module}:score"}], **{f"{module}.py": text}),
             f"{R}{module}:score{what}")
        for module, text, what in USER_REWARDS
    ),
    *REWARDS,
    *(Case(f"reward-param-{id}", grpo(rewards=[entry]), r"rewards\.0: " + what + r" \(line \d+\)")
      for id, entry, what in BUILTIN_PARAMS),
    *TOKENIZERS,
    *RECIPE_AND_DATA,
    *TEMPLATES,
]  # fmt: skip
