"""Host-side checks of a recipe's inputs before anything starts: model folders and every row of each
local data file."""

from __future__ import annotations

from aligntune.core.algorithm_sections import PPOAlgorithm
from aligntune.core.algorithms import get_algorithm
from aligntune.core.data import resolve_local
from aligntune.core.data_check import DataSummary, check_local_data
from aligntune.core.errors import DataError, UserInputError
from aligntune.core.paths import local_path
from aligntune.core.recipe import Recipe
from aligntune.core.sections import DataSource


def _local_model_paths(recipe: Recipe) -> list[tuple[str, str]]:
    """(recipe field, reference) for every model the recipe names."""
    refs = [("model.name_or_path", recipe.model.name_or_path)]
    algorithm = recipe.algorithm
    if isinstance(algorithm, PPOAlgorithm):
        for field, value in (
            ("reward_model", algorithm.reward_model),
            ("value_model", algorithm.value_model),
        ):
            if value:
                refs.append((f"algorithm.{field}", value))
    return refs


def _data_sources(recipe: Recipe) -> list[tuple[str, DataSource, tuple[str, ...]]]:
    accepted = get_algorithm(recipe.algorithm.name).data_formats
    sources = [("data.train", recipe.data.train, accepted)]
    if recipe.data.eval is not None:
        sources.append(("data.eval", recipe.data.eval, accepted))
    algorithm = recipe.algorithm
    if isinstance(algorithm, PPOAlgorithm) and algorithm.train_reward_model is not None:
        reward_data = algorithm.train_reward_model.data
        sources.append(("algorithm.train_reward_model.data", reward_data, ("preference",)))
    return sources


def _config_file_problem(recipe: Recipe) -> str | None:
    """`distributed.config_file` is always a local file (there is no hub for it)."""
    config = recipe.distributed.config_file
    if config is None:
        return None
    path = resolve_local(config, recipe.base_dir)
    if not path.is_file():
        return f"distributed.config_file: {path} is not a file"
    return None


def _model_problems(recipe: Recipe) -> list[str]:
    """Each local model folder exists and holds a transformers model."""
    problems = []
    for field, reference in _local_model_paths(recipe):
        path = local_path(reference, recipe.base_dir)
        if path is None:
            continue
        if not path.is_dir():
            problems.append(f"{field}: model folder {path} not found")
        elif not (path / "config.json").is_file():
            problems.append(f"{field}: {path} has no config.json (not a transformers model)")
    return problems


def check_inputs(recipe: Recipe) -> list[DataSummary]:
    """Check every local model folder and every row of each local data file; one UserInputError
    lists every problem, each line starting with its field."""
    problems: list[str] = []
    hints: list[str] = []
    summaries: dict[str, DataSummary] = {}
    for field, source, accepted in _data_sources(recipe):
        path = local_path(source.path, recipe.base_dir)
        if path is None:
            continue
        try:
            summaries[field] = check_local_data(path, source.columns, source.format, accepted)
        except DataError as exc:
            problems += [f"{field}: {line}" for line in exc.lines]
            hints += [exc.hint] if exc.hint else []
    config_problem = _config_file_problem(recipe)
    problems = _model_problems(recipe) + problems + ([config_problem] if config_problem else [])
    if problems:
        raise UserInputError("\n".join(problems), hint=hints[0] if hints else None)
    return list(summaries.values())
