"""What a hostile review found the first corpus missed: reward return values and exceptions the
checks themselves tripped over, installed-module rewards, broken model folders."""

import json

from broken_harness import TINY, Case, recipe

R = r"rewards\[0\]\.function: reward "


def reward(text: str, function: str = "odd:score") -> dict[str, str]:
    """A GRPO recipe on the tiny data whose only reward is `function`, defined by `text`."""
    rewards = [{"function": function}]
    return {"recipe.yaml": recipe("grpo", rewards=rewards), "odd.py": text}


ODD_RESULTS = [  # (id, the module's text, what is said of odd:score)
    (
        "iter-raises",
        "class W:\n    __len__ = lambda s: 1\n"
        "    def __iter__(s):\n        raise RuntimeError('x')\n"
        "def score(completions, **kw):\n    return W()\n",
        "returned a W whose items cannot be read",
    ),
    (
        "float-raises",
        "class F:\n    def __float__(s):\n        raise RuntimeError('float boom')\n"
        "def score(completions, **kw):\n    return [F() for _ in completions]\n",
        "returned F .* for completion 0",
    ),
    (
        "base-exception",
        "class Odd(BaseException):\n    pass\n"
        "def score(completions, **kw):\n    raise Odd('base')\n",
        "raised Odd: base",
    ),
]


def model(**changes: object) -> dict[str, str]:
    """A recipe on a copy of the tiny model's folder with these files replaced."""
    files = {f"model/{p.name}": p.read_bytes() for p in (TINY / "model").iterdir() if p.is_file()}
    files.update({f"model/{name}": text for name, text in changes.items()})  # type: ignore[misc]
    return {"recipe.yaml": recipe(model={"name_or_path": "./model"}), **files}  # type: ignore[dict-item]


CONFIG = json.loads((TINY / "model" / "config.json").read_text(encoding="utf-8"))
UNTYPED = json.dumps({key: value for key, value in CONFIG.items() if key != "model_type"})

CASES = [
    *(Case(f"reward-{id}", reward(text), f"{R}odd:score {what}") for id, text, what in ODD_RESULTS),
    Case(
        "reward-installed-module-wrong-signature",
        {"recipe.yaml": recipe("grpo", rewards=[{"function": "json:dumps"}])},
        r"json:dumps.*completions",
    ),
    Case(
        "model-config-not-json",
        model(**{"config.json": "{not json"}),
        r"model\.name_or_path: {dir}/model/config\.json is not valid JSON",
    ),
    Case(
        "model-config-without-model-type",
        model(
            **{"config.json": json.dumps({k: v for k, v in CONFIG.items() if k != "model_type"})}
        ),
        r"model\.name_or_path: {dir}/model/config\.json names no model_type",
    ),
    Case(
        "model-weights-not-safetensors",
        model(**{"model.safetensors": "garbage, not a safetensors file"}),
        r"model\.name_or_path: {dir}/model/model\.safetensors is not a safetensors file",
    ),
    Case(
        "model-without-weights",
        {k: v for k, v in model().items() if k != "model/model.safetensors"},
        r"model\.name_or_path: {dir}/model has no weights: it needs model\.safetensors or "
        r"model\.safetensors\.index\.json",
    ),
    Case(
        "model-tokenizer-json-empty-object",
        model(**{"tokenizer.json": "{}"}),
        r"model\.name_or_path: {dir}/model/tokenizer\.json holds no tokenizer \(no \"model\" "
        r"section\)",
    ),
    Case(
        "model-tokenizer-json-truncated",
        model(**{"tokenizer.json": '{"version": "1.0", "model": {'}),
        r"model\.name_or_path: {dir}/model/tokenizer\.json is not valid JSON",
    ),
]


def utf16(folder: object) -> bytes:
    """The tiny SFT recipe saved as UTF-16, as some Windows editors do."""
    return recipe().encode("utf-16")


CASES += [
    Case(
        "recipe-utf16", {"recipe.yaml": utf16}, r"not UTF-8 text .*\nhint: save the recipe as UTF-8"
    ),
    Case(
        "data-gzip",
        {
            "recipe.yaml": recipe(data={"train": {"path": "./d.jsonl.gz"}}),
            "d.jsonl.gz": b"\x1f\x8b",
        },
        r"unsupported data file type '\.gz'.*\nhint: decompress",
    ),
]

CASES += [
    Case(
        "chat-template-unclosed-block",
        {
            "recipe.yaml": recipe(
                model={
                    "name_or_path": str(TINY / "model"),
                    "chat_template": "{% for m in messages %}{{ m.content }}\n{% if m %}",
                }
            )
        },
        r"model\.chat_template: not valid Jinja: line 2 of the template: Unexpected end",
    ),
]
