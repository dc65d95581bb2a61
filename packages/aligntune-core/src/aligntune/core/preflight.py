"""Host-side checks of a recipe's inputs (model folder, local data files) before anything starts."""

from __future__ import annotations

from aligntune.core.algorithms import get_algorithm
from aligntune.core.data import DataPreview, preview_local_data
from aligntune.core.errors import DataError, UserInputError
from aligntune.core.paths import local_path
from aligntune.core.recipe import Recipe
from aligntune.core.sections import DataSource


def _local_model_paths(recipe: Recipe) -> list[tuple[str, str]]:
    """(recipe field, reference) for every model the recipe names."""
    refs = [("model.name_or_path", recipe.model.name_or_path)]
    algorithm = recipe.algorithm
    for field in ("reward_model", "value_model"):
        value = getattr(algorithm, field, None)
        if value:
            refs.append((f"algorithm.{field}", value))
    return refs


def _data_sources(recipe: Recipe) -> list[tuple[str, DataSource, tuple[str, ...]]]:
    accepted = get_algorithm(recipe.algorithm.name).data_formats
    sources = [("data.train", recipe.data.train, accepted)]
    if recipe.data.eval is not None:
        sources.append(("data.eval", recipe.data.eval, accepted))
    reward_training = getattr(recipe.algorithm, "train_reward_model", None)
    if reward_training is not None:
        sources.append(("algorithm.train_reward_model.data", reward_training.data, ("preference",)))
    return sources


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
    if problems:
        raise UserInputError("\n".join(problems))
    return previews
