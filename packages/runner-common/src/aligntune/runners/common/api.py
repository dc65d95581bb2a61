"""The in-process Python API: build a Recipe from keyword arguments, select a backend, and get a
trainer from that backend's runner (imported lazily, only once chosen).

Users import it by the original AlignTune path, which forwards here:

    from aligntune.core.backend_factory import create_sft_trainer
    trainer = create_sft_trainer(model_name="Qwen/Qwen3-0.6B", dataset_name="tatsu-lab/alpaca",
                                 backend="trl", num_epochs=3)
    trainer.train()
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, get_args

from aligntune.core.algorithm_sections import ALGORITHM_SECTIONS, SFTAlgorithm, algorithm_names
from aligntune.core.algorithms import ALGORITHMS
from aligntune.core.backends import BACKENDS, BackendChoice, get_backend
from aligntune.core.errors import RecipeError
from aligntune.core.loader import load_recipe, recipe_from_dict
from aligntune.core.plan import GpuInfo, HostInfo
from aligntune.core.recipe import Recipe
from aligntune.core.selection import select_backend

BackendType = StrEnum(  # type: ignore[misc]  # members come from the registry
    "BackendType", {choice.upper(): choice for choice in get_args(BackendChoice)}
)
"""The training backends a recipe or API call may ask for: BackendType.TRL, .UNSLOTH, .AUTO."""
SFT_NAME = algorithm_names(SFTAlgorithm)[0]

KWARG_FIELDS: dict[str, tuple[str, ...]] = {
    "revision": ("model", "revision"),
    "dtype": ("model", "dtype"),
    "trust_remote_code": ("model", "trust_remote_code"),
    "quantization": ("model", "quantization"),
    "chat_template": ("model", "chat_template"),
    "peft_method": ("model", "peft", "method"),
    "lora_r": ("model", "peft", "r"),
    "lora_alpha": ("model", "peft", "alpha"),
    "lora_dropout": ("model", "peft", "dropout"),
    "target_modules": ("model", "peft", "target_modules"),
    "split": ("data", "train", "split"),
    "subset": ("data", "train", "subset"),
    "data_format": ("data", "train", "format"),
    "columns": ("data", "train", "columns"),
    "eval_dataset_name": ("data", "eval", "path"),
    "eval_fraction": ("data", "eval_fraction"),
    "gradient_accumulation_steps": ("training", "gradient_accumulation_steps"),
    "lr_scheduler": ("training", "lr_scheduler"),
    "warmup_ratio": ("training", "warmup_ratio"),
    "weight_decay": ("training", "weight_decay"),
    "max_grad_norm": ("training", "max_grad_norm"),
    "precision": ("training", "precision"),
    "gradient_checkpointing": ("training", "gradient_checkpointing"),
    "seed": ("training", "seed"),
    "logging_steps": ("training", "logging_steps"),
    "save_steps": ("training", "save_steps"),
    "save_total_limit": ("training", "save_total_limit"),
    "eval_steps": ("training", "eval_steps"),
    "report_to": ("training", "report_to"),
    "save_final": ("output", "save_final"),
    "run_name": ("name",),
}
"""Extra keyword arguments of create_*_trainer and the recipe field each one sets."""

_ALGORITHM_KWARGS = {
    name for section in ALGORITHM_SECTIONS.values() for name in section.model_fields
} - {"name"}


def list_backends() -> list[dict[str, Any]]:
    """Each backend with the algorithms it supports (what the seed's docs call the matrix)."""
    return [
        {
            "backend": backend.name,
            "algorithms": [a.name for a in ALGORITHMS if backend.name in a.backends],
            "runner_installed": backend.runner_installed(),
            "requires": backend.requires,
        }
        for backend in BACKENDS
    ]


ARGUMENT_FIELDS: dict[str, str] = {
    "model_name": "model.name_or_path",
    "dataset_name": "data.train.path",
    "backend": "backend",
    "output_dir": "output.dir",
    "num_epochs": "training.epochs",
    "max_steps": "training.max_steps",
    "batch_size": "training.batch_size",
    "learning_rate": "training.learning_rate",
    "max_seq_length": "data.max_length",
    "max_samples": "data.train.max_samples",
    "system_prompt": "data.system_prompt",
}
"""The named arguments of create_*_trainer and the recipe field each one sets."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _config_keeps_its_values(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """With `config=`, a named argument the caller left out keeps the config's value: the
    signature's defaults (the original AlignTune's) fill in only a call without a config."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        bound = signature.bind(*args, **kwargs)
        if bound.arguments.get("config") is not None:
            for name in ARGUMENT_FIELDS.keys() - bound.arguments.keys():
                bound.arguments[name] = None
        return function(*bound.args, **bound.kwargs)

    return call


def _argument_fields(arguments: dict[str, Any]) -> dict[str, Any]:
    """Recipe field -> value for the named arguments of a create_*_trainer call (None: unset)."""
    fields = {ARGUMENT_FIELDS[k]: v for k, v in arguments.items() if k in ARGUMENT_FIELDS}
    if fields["backend"] is not None:
        fields["backend"] = BackendType(fields["backend"]).value
    return fields


def _set(tree: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _base_tree(config: str | Path | Mapping[str, Any] | None) -> tuple[dict[str, Any], Path]:
    if config is None:
        return {}, Path.cwd()
    if isinstance(config, Mapping):
        return dict(config), Path.cwd()
    recipe = load_recipe(config)
    return recipe.model_dump(exclude_unset=True), recipe.base_dir


def _recipe_from_call(
    algorithm: str,
    tree: dict[str, Any],
    base_dir: Path,
    given: dict[str, Any],
    extra: dict[str, Any],
) -> Recipe:
    problems = []
    for key, value in extra.items():
        if key in KWARG_FIELDS:
            _set(tree, KWARG_FIELDS[key], value)
        elif key in _ALGORITHM_KWARGS:
            tree.setdefault("algorithm", {})[key] = value
        else:
            close = difflib.get_close_matches(key, [*KWARG_FIELDS, *_ALGORITHM_KWARGS], n=1)
            problems.append(
                f"{key}: unknown keyword argument"
                + (f"; did you mean {close[0]!r}?" if close else "")
            )
    if problems:
        raise RecipeError("create_trainer arguments", problems)
    tree.setdefault("algorithm", {})["name"] = algorithm
    for path, value in given.items():
        if value is not None:
            _set(tree, path.split("."), value)
    return recipe_from_dict(tree, source="create_trainer arguments", base_dir=base_dir)


def _this_process_host() -> HostInfo:
    """The in-process view of the host: installed runners, and CUDA GPUs if torch is installed."""
    runners = frozenset(b.name for b in BACKENDS if b.runner_installed())
    gpus: tuple[GpuInfo, ...] = ()
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            gpus = tuple(
                GpuInfo(torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())
            )
    return HostInfo(gpus=gpus, runner_packages=runners)


def create_trainer_from_recipe(
    recipe: Recipe,
    backend: str | BackendType | None = None,
    reward_callables: Mapping[str, Callable[..., Any]] | None = None,
) -> Any:
    """A trainer for a validated recipe, from the runner that select_backend picks here."""
    requested = BackendType(backend).value if backend is not None else None
    plan = select_backend(recipe, _this_process_host(), backend=requested, runtime="in-process")
    runner = importlib.import_module(get_backend(plan.backend).runner_module)
    return runner.create_trainer(recipe, plan, reward_callables=reward_callables)


@_config_keeps_its_values
def create_sft_trainer(
    model_name: str,
    dataset_name: str,
    backend: str | BackendType = "auto",
    output_dir: str = "./output",
    num_epochs: float = 3,
    max_steps: int | None = None,
    batch_size: int = 4,
    learning_rate: float | None = None,
    max_seq_length: int = 512,
    max_samples: int | None = None,
    system_prompt: str | None = None,
    config: str | Path | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """A supervised fine-tuning trainer; keyword arguments map onto recipe fields (and override
    `config`'s, which keeps every field the call leaves out)."""
    given = _argument_fields(locals())
    tree, base_dir = _base_tree(config)
    recipe = _recipe_from_call(SFT_NAME, tree, base_dir, given, kwargs)
    return create_trainer_from_recipe(recipe)


@_config_keeps_its_values
def create_rl_trainer(
    model_name: str,
    dataset_name: str,
    algorithm: str,
    backend: str | BackendType = "auto",
    output_dir: str = "./output",
    num_epochs: float = 1,
    max_steps: int | None = None,
    batch_size: int = 4,
    learning_rate: float | None = None,
    max_seq_length: int = 512,
    max_samples: int | None = None,
    system_prompt: str | None = None,
    reward_functions: Sequence[str | Callable[..., Any]] | None = None,
    reward_function_weights: Sequence[float] | None = None,
    reward_model_name: str | None = None,
    reward_model_path: str | None = None,
    config: str | Path | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """A preference or RL trainer (dpo, kto, ppo, grpo, gspo, dapo, dr_grpo)."""
    given = _argument_fields(locals())
    if ALGORITHM_SECTIONS.get(algorithm) is SFTAlgorithm:
        raise RecipeError(
            "create_rl_trainer arguments", ["algorithm: use create_sft_trainer for sft"]
        )
    tree, base_dir = _base_tree(config)
    callables: dict[str, Callable[..., Any]] = {}
    if reward_functions:
        weights = list(reward_function_weights or [1.0] * len(reward_functions))
        if len(weights) != len(reward_functions):
            raise RecipeError(
                "create_rl_trainer arguments",
                [
                    f"reward_function_weights: {len(weights)} weights for "
                    f"{len(reward_functions)} reward functions"
                ],
            )
        entries = []
        for function, weight in zip(reward_functions, weights, strict=True):
            if callable(function):
                name = f"{function.__module__}:{function.__name__}"
                callables[name] = function
                function = name
            entries.append({"function": function, "weight": weight})
        tree["rewards"] = entries
    given["algorithm.reward_model"] = reward_model_path or reward_model_name
    recipe = _recipe_from_call(algorithm, tree, base_dir, given, kwargs)
    return create_trainer_from_recipe(recipe, reward_callables=callables)
