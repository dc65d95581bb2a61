"""Recipe mistakes the loader and the recipe's own rules catch."""

from broken_harness import Case, recipe

from aligntune.core.errors import ExitCode

CASES = [
    Case("unknown-key", {"recipe.yaml": recipe(trainig={})}, r"trainig: unknown key; did you mean"),
    Case(
        "wrong-type",
        {"recipe.yaml": recipe(training={"batch_size": "big"})},
        r"training\.batch_size: .*\(line \d+\)",
    ),
    Case("yaml-syntax", {"recipe.yaml": "algorithm:\n  name: sft\n model: [\n"}, r"recipe\.yaml:3"),
    Case(
        "missing-model-folder",
        {"recipe.yaml": recipe(model={"name_or_path": "./nope"})},
        r"model\.name_or_path: model folder {dir}/nope not found",
    ),
    Case(
        "missing-data-file",
        {"recipe.yaml": recipe(data={"train": {"path": "./nope.jsonl"}})},
        r"data\.train: .*nope\.jsonl",
    ),
    Case(
        "data-path-is-a-folder",
        {"recipe.yaml": recipe(data={"train": {"path": "./train.jsonl"}}), "train.jsonl/a": "x"},
        r"data\.train: {dir}/train\.jsonl: a folder, not a data file\nhint: name one \.jsonl",
    ),
    Case(
        "backend-flag-misspelt",
        {"recipe.yaml": recipe()},
        r"Invalid value for '--backend' / '-b': 'trll'; use auto, trl, unsloth",
        commands=(
            ("plan", "recipe.yaml", "-b", "trll"),
            ("run", "recipe.yaml", "--backend", "trll"),
        ),
        exit_code=ExitCode.USAGE,
    ),
    Case(
        "eval-steps-without-eval-data",
        {"recipe.yaml": recipe(training={"max_steps": 2, "eval_steps": 1})},
        r"training\.eval_steps \(1\) evaluates on eval data, and this recipe has none; set "
        r"data\.eval or data\.eval_fraction",
    ),
    Case(
        "max-length-one-token",
        {"recipe.yaml": recipe(data={"train": {"path": "x/y"}, "max_length": 1})},
        r"data\.max_length: Input should be greater than or equal to 2 \(line \d+\)",
    ),
    Case(
        "generation-batch",
        {"recipe.yaml": recipe("grpo", training={"batch_size": 3, "max_steps": 2})},
        r"not a multiple of algorithm\.num_generations \(2\)",
    ),
    Case(
        "generation-batch-eval",
        {
            "recipe.yaml": recipe(
                "grpo",
                algorithm={"name": "grpo", "num_generations": 4},
                training={"batch_size": 2, "gradient_accumulation_steps": 2},
                data={"train": {"path": "x/y"}, "eval_fraction": 0.1},
            )
        },
        r"completions per evaluation batch",
    ),
    Case(
        "deepspeed-config-missing",
        {"recipe.yaml": recipe(distributed={"strategy": "deepspeed", "config_file": "ds.json"})},
        r"distributed\.config_file: {dir}/ds\.json is not a file",
    ),
    Case(
        "deepspeed-config-not-json",
        {
            "recipe.yaml": recipe(distributed={"strategy": "deepspeed", "config_file": "ds.yaml"}),
            "ds.yaml": "zero_optimization:\n  stage: 2\n",
        },
        r"distributed\.config_file: {dir}/ds\.yaml is not a DeepSpeed JSON config",
        commands=(("validate", "recipe.yaml"),),
    ),
    Case(
        "deepspeed-stage-and-config",
        {
            "recipe.yaml": recipe(
                distributed={"strategy": "deepspeed", "zero_stage": 3, "config_file": "ds.json"}
            ),
            "ds.json": '{"zero_optimization": {"stage": 2}}',
        },
        r"distributed: zero_stage or config_file, not both: the config file's "
        r"zero_optimization\.stage is the one DeepSpeed uses \(line \d+\)",
    ),
    Case(
        "fp16-on-cpu",
        {"recipe.yaml": recipe(training={"precision": "fp16"})},
        r"fp16 needs a CUDA GPU",
        commands=(
            ("plan", "recipe.yaml", "--runtime", "local"),
            ("run", "recipe.yaml", "--runtime", "local"),
        ),
        exit_code=ExitCode.UNAVAILABLE,
    ),
]
