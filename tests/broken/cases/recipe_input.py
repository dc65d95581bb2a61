"""Mistakes in the recipe file itself: unsafe or malformed YAML, values of the wrong type, text
past its limit, LoRA modules the model does not have, trackers no image installs."""

from typing import Any

from broken_harness import TINY, Case, recipe

AT = r"recipe\.yaml:\d+: 1 problem\s+.*"
"""The error names the recipe file and the line of the mistake (fields name their line too)."""
LONG_NAME = "x" * 300
"""A file or folder name longer than any file system allows (255 bytes)."""


def _case(case_id: str, text: str | bytes, message: str, **options: Any) -> Case:
    """A case whose only file is the recipe."""
    return Case(case_id, {"recipe.yaml": text}, message, **options)


def _with(text: str, old: str, new: str) -> str:
    """`text` with its one `old` replaced by `new` (a raw YAML edit the dumper would not make)."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


SFT = recipe()
GRPO = recipe("grpo")


def _billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return SFT + "\n".join(lines) + "\n"


def _alias_chain(levels: int) -> str:
    chain = [f"x{i}: &x{i} [{f'*x{i - 1}' if i else 1}]" for i in range(levels)]
    return SFT + "\n".join(chain) + "\n"


def _nested(levels: int) -> str:
    return SFT + "extra: " + "[" * levels + "]" * levels + "\n"


def _model_folder(model_type: str) -> dict[str, str]:
    return {"m/config.json": f'{{"model_type": "{model_type}"}}\n'}


def _lora(modules: object, model: str = str(TINY / "model")) -> str:
    return recipe(model={"name_or_path": model, "peft": {"target_modules": modules}})


def _training(**fields: Any) -> str:
    return recipe(training={"max_steps": 2, **fields})


def _model(**fields: Any) -> str:
    return recipe(model={"name_or_path": "x/y", **fields})


def _rewards(*rewards: dict[str, Any]) -> str:
    return recipe("grpo", rewards=list(rewards))


YAML_CASES = [
    _case("alias-bomb", _billion_laughs(), AT + r"aliases repeat this value to more than 10000"),
    _case("alias-chain-depth", _alias_chain(30), AT + r"aliases nest this value more than 20"),
    _case("alias-recursive", SFT + "loop: &l [1, *l]\n", AT + r"alias \*l is inside what it names"),
    _case("alias-undefined", SFT + "x: *nope\n", AT + r"found undefined alias 'nope'"),
    _case(
        "duplicate-section",
        SFT + "training:\n  max_steps: 5\n",
        AT + r"duplicate key 'training', first on line 9;",
    ),
    _case(
        "duplicate-field",
        _with(SFT, "  batch_size: 4\n", "  batch_size: 4\n  batch_size: 8\n"),
        AT + r"duplicate key 'batch_size', first on line 11;",
    ),
    _case("nul-byte", _with(SFT, "steps: 2", "steps: 2\0"), AT + r"a NUL byte is not allowed"),
    _case("bell-character", _with(SFT, "steps: 2", "steps: 2\x07"), AT + r"character U\+0007"),
    _case("deep-nesting", _nested(40), AT + r"nested more than 20 levels deep"),
    _case(
        "huge-file",
        SFT + "# " + "pad " * 280_000,
        r"is 11\d\d\d\d\d bytes; a recipe is at most 1048576",
    ),
    _case("many-values", SFT + "x: [" + "1, " * 20_000 + "]\n", AT + r"more than 10000 values"),
    _case("long-key", SFT + f"{'k' * 300}: 1\n", AT + r"a key of 300 characters; .* at most 256"),
    _case("huge-integer", _with(SFT, ": 2", ": " + "9" * 5000), AT + r"'9999.*as an integer"),
    _case(
        "impossible-date",
        _with(SFT, "model:\n", "model:\n  revision: 2024-13-45\n"),
        AT + r"cannot read '2024-13-45' as a date: month must be in 1\.\.12",
    ),
    _case("not-utf8", SFT.encode() + b"# caf\xe9\n", AT + r"not UTF-8 text \(byte 0xe9"),
    _case(
        "python-tag",
        SFT + "x: !!python/object/apply:os.system ['touch pwned']\n",
        AT + r"could not determine a constructor for the tag .*python/object/apply",
    ),
    _case("two-documents", SFT + "---\n" + SFT, AT + r"expected a single document in the stream"),
    _case("tab-indent", _with(SFT, "  max_steps", "\tmax_steps"), AT + r"YAML syntax error"),
    Case("recipe-is-a-folder", {"recipe.yaml/notes.txt": "x"}, r"is a folder, not a recipe file"),
    Case(
        "recipe-name-too-long",
        {},
        r"cannot read recipe: File name too long",
        commands=tuple((command, f"{LONG_NAME}.yaml") for command in ("validate", "plan", "run")),
    ),
]

BOOLEAN = r"got true \(YAML reads yes, no, on, off, true and false as booleans\)"
TYPE_CASES = [
    _case(
        "yes-as-a-number", _with(SFT, "steps: 2", "steps: yes"), r"max_steps: .*integer, " + BOOLEAN
    ),
    _case("true-as-a-float", _training(learning_rate=True), r"learning_rate: .*number, " + BOOLEAN),
    _case(
        "one-as-a-boolean",
        _with(SFT, "name: sft", "name: sft\n  packing: 1"),
        r"algorithm\.packing: Input should be a valid boolean, got 1 \(line 3\)",
    ),
    _case(
        "number-as-a-boolean",
        _training(gradient_checkpointing=1),
        r"training\.gradient_checkpointing: Input should be a valid boolean, got 1 \(line \d+\)",
    ),
    _case(
        "text-as-a-boolean", _model(trust_remote_code="yes"), r"remote_code: .*boolean, got 'yes'"
    ),
    _case("quoted-number", _training(weight_decay="0.01"), r"weight_decay: .*number, got '0\.01'"),
    _case("float-as-an-integer", _training(batch_size=4.0), r"batch_size: .*integer, got 4\.0"),
    _case("exponent-as-an-integer", _training(max_steps="1e3"), r"max_steps: .*integer, got '1e3'"),
    _case("empty-value", _with(SFT, "batch_size: 4", "batch_size:"), r"got an empty value"),
    _case("infinite-epochs", _with(SFT, "max_steps: 2", "epochs: .inf"), r"epochs: .*finite.* inf"),
    _case("nan-warmup", _with(SFT, "steps: 2", "steps: 2\n  warmup_ratio: .nan"), r"ratio: .*nan"),
    _case(
        "infinite-beta",
        _with(recipe("dpo"), "name: dpo", "name: dpo\n  beta: -.inf"),
        r"algorithm\.beta: Input should be a finite number, got -inf \(line 3\)",
    ),
    _case(
        "nan-reward-weight",
        _with(GRPO, "  params:", "  weight: .nan\n  params:"),
        r"rewards\.0\.weight: Input should be a finite number, got nan",
    ),
    _case("negative-seed", _training(seed=-1), r"training\.seed: .*greater than or equal to 0"),
    _case("seed-past-32-bits", _training(seed=2**32), r"seed: .*less than or equal to 4294967295"),
    _case(
        "date-as-a-revision",
        _with(SFT, "model:\n", "model:\n  revision: 2024-01-05\n"),
        r"model\.revision: Input should be a valid string, got 2024-01-05, a date; quote it",
    ),
    _case("boolean-as-a-name", "name: off\n" + SFT, r"name: .*string, got false .*; quote it"),
    _case("section-as-a-list", recipe(training=[]), r"training: expected a mapping .*, got a list"),
]

SIZE_CASES = [
    _case(
        "long-system-prompt",
        recipe(data={"train": {"path": "x/y"}, "system_prompt": "Be " * 6000}),
        r"data\.system_prompt: String should have at most 16384 characters",
    ),
    _case(
        "long-chat-template",
        _model(chat_template="{{ messages }}" * 5000),
        r"model\.chat_template: String should have at most 65536 characters",
    ),
    _case(
        "chat-template-unknown-name",
        _model(chat_template="chatm"),
        r"chat_template: unknown chat template name 'chatm' \(did you mean 'chatml'\?\); "
        r"valid names: chatml, qwen, llama-3, mistral, gemma",
    ),
    _case(
        "long-column-name",
        recipe(data={"train": {"path": "x/y", "columns": {"prompt": LONG_NAME}}}),
        r"data\.train\.columns\.prompt: String should have at most 256 characters",
    ),
    _case(
        "huge-reward-params",
        _rewards({"function": "format_regex", "params": {"pattern": "a" * 20_000}}),
        r"rewards\.0\.params: 200\d\d characters as JSON; at most 16384",
    ),
    _case(
        "many-reward-params",
        _rewards({"function": "contains", "params": {f"p{i}": i for i in range(40)}}),
        r"rewards\.0\.params: Dictionary should have at most 32 items",
    ),
    _case(
        "long-reward-function",
        _rewards({"function": f"m:{LONG_NAME}"}),
        r"rewards\.0\.function: String should have at most 256 characters",
    ),
    _case("long-run-name", f"name: {'r' * 150}\n{SFT}", r"name: String should have at most 100"),
    _case(
        "long-model-path-part",
        recipe(model={"name_or_path": f"./{LONG_NAME}"}),
        r"model\.name_or_path: a path part of 300 bytes; file and folder names are at most 255",
    ),
    _case(
        "long-data-path",
        recipe(data={"train": {"path": "./" + "/".join(["d" * 200] * 25)}}),
        r"data\.train\.path: a path of 5026 bytes; at most 4096",
    ),
    _case(
        "nul-in-path",
        recipe(model={"name_or_path": "./model\0"}),
        r"model\.name_or_path: a path cannot contain a NUL character",
    ),
    _case("long-output-dir", recipe(output={"dir": f"o/{LONG_NAME}"}), r"output\.dir: a path part"),
    _case(
        "too-many-target-modules",
        _lora([f"layer{i}" for i in range(70)], "x/y"),
        r"model\.peft\.target_modules: List should have at most 64 items",
    ),
]

ARCHITECTURE_CASES = [
    _case(
        "gpt2-modules-on-qwen2",
        _lora(["c_attn", "c_proj"]),
        r"model\.peft\.target_modules: no module 'c_attn', 'c_proj' in .*model \(a qwen2 model\); "
        r"valid: down_proj, embed_tokens, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, "
        r"v_proj \(or target_modules: all-linear\) \(line \d+\)",
    ),
    _case("misspelt-module", _lora(["q_proj", "v_porj"]), r"no module 'v_porj' in .*v_proj"),
    _case("all-linear-in-a-list", _lora(["all-linear"]), r"no module 'all-linear' in .*qwen2"),
    Case(
        "llama-modules-on-gpt2",
        {"recipe.yaml": _lora(["q_proj", "v_proj"], "./m"), **_model_folder("gpt2")},
        r"no module 'q_proj', 'v_proj' in \./m \(a gpt2 model\); valid: c_attn, c_fc, c_proj",
    ),
    Case(
        "phi3-has-fused-projections",
        {"recipe.yaml": _lora(["q_proj", "k_proj", "o_proj"], "./m"), **_model_folder("phi3")},
        r"no module 'q_proj', 'k_proj' in \./m \(a phi3 model\); valid: .*qkv_proj",
    ),
]

TRACKER_CASES = [
    _case(
        "report-to-wandb",
        _training(report_to=["wandb"]),
        r"training: report_to: wandb is not installed in aligntune's images \(they have "
        r"tensorboard, trackio\); use one of those",
    ),
    _case(
        "report-to-one-name-not-installed",
        _training(report_to="mlflow"),
        r"report_to: mlflow is not installed in aligntune's images",
    ),
    _case(
        "report-to-two-trackers",
        _training(report_to=["tensorboard", "mlflow", "wandb"]),
        r"report_to: mlflow, wandb is not installed",
    ),
    _case(
        "report-to-unknown-tracker",
        _training(report_to=["comet"]),
        r"report_to\.0: Input should be 'tensorboard', 'trackio', 'wandb' or 'mlflow', got 'comet'",
    ),
]

CASES = [*YAML_CASES, *TYPE_CASES, *SIZE_CASES, *ARCHITECTURE_CASES, *TRACKER_CASES]
