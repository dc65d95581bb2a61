"""Host-side checks of a recipe's inputs (model folder, local data files) before anything starts."""

from __future__ import annotations

from aligntune.core.algorithm_sections import PPOAlgorithm
from aligntune.core.algorithms import get_algorithm
from aligntune.core.data import DataPreview, preview_local_data, resolve_local
from aligntune.core.errors import DataError, UserInputError
from aligntune.core.paths import local_path, unsafe_references
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


def check_inputs(recipe: Recipe) -> list[DataPreview]:
    """Check every local model folder and data file the recipe names; list every problem."""
    problems: list[str] = []
    previews: list[DataPreview] = []
    for field, reference in _local_model_paths(recipe):
        path = local_path(reference, recipe.base_dir)
        if path is not None:
            if not path.is_dir():
                problems.append(f"{field}: model folder {path} not found")
            elif not (path / "config.json").is_file():
                problems.append(f"{field}: {path} has no config.json (not a transformers model)")
    for field, source, accepted in _data_sources(recipe):
        path = local_path(source.path, recipe.base_dir)
        if path is None:
            continue
        try:
            previews.append(preview_local_data(path, source.columns, source.format, accepted))
        except DataError as exc:
            problems.append(f"{field}: {exc}")
    config_problem = _config_file_problem(recipe)
    if config_problem:
        problems.append(config_problem)
    problems.extend(unsafe_references(recipe))
    if problems:
        raise UserInputError("\n".join(problems))
    return previews
