"""Host-side checks of a recipe's inputs before anything starts: model folders and their tokenizer,
every row of each local data file, and the rewards against that data."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aligntune.core.algorithm_sections import PPOAlgorithm
from aligntune.core.algorithms import get_algorithm
from aligntune.core.data import resolve_local
from aligntune.core.data_check import DataSummary, TurnNames, check_local_data, sample_rows
from aligntune.core.data_recipe import (
    mixture_problems,
    prompt_and_template_problems,
    split_and_label_problems,
)
from aligntune.core.errors import DataError, UserInputError
from aligntune.core.model_folder import chat_template_text, model_folder_problems
from aligntune.core.paths import local_path, unsafe_references
from aligntune.core.recipe import Recipe
from aligntune.core.reward_checks import reward_problems
from aligntune.core.sections import DataSource
from aligntune.core.template_check import local_facts, render_problems
from aligntune.core.trained_turns import template_problem

POLICY = "model.name_or_path"
"""The recipe field of the model being trained."""


def _local_model_paths(recipe: Recipe) -> list[tuple[str, str]]:
    """(recipe field, reference) for every model the recipe names."""
    refs = [(POLICY, recipe.model.name_or_path)]
    algorithm = recipe.algorithm
    if isinstance(algorithm, PPOAlgorithm):
        for field, value in (
            ("reward_model", algorithm.reward_model),
            ("value_model", algorithm.value_model),
        ):
            if value:
                refs.append((f"algorithm.{field}", value))
    return refs


def data_sources(recipe: Recipe) -> list[tuple[str, DataSource, tuple[str, ...]]]:
    """(recipe field, source, the formats it may have) for every data source of the recipe."""
    accepted = get_algorithm(recipe.algorithm.name).data_formats
    sources = [(field, source, accepted) for field, source in recipe.data.train_sources()]
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
    if recipe.distributed.strategy == "deepspeed":  # transformers reads it as DeepSpeed's JSON
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"distributed.config_file: {path} is not a DeepSpeed JSON config ({exc})"
        if not isinstance(settings, dict):
            kind = type(settings).__name__
            return f"distributed.config_file: {path} holds a JSON {kind}, not an object"
    return None


def _model_problems(recipe: Recipe) -> list[str]:
    """Each local model folder holds a transformers model; the policy's a tokenizer too."""
    problems = []
    for field, reference in _local_model_paths(recipe):
        path = local_path(reference, recipe.base_dir)
        if path is not None:
            # The policy's tokenizer loads from its folder; a repository's own code may read others.
            tokenizer = field == POLICY and not recipe.model.trust_remote_code
            problems += [f"{field}: {p}" for p in model_folder_problems(path, tokenizer)]
    return problems


def _template_problems(recipe: Recipe, summaries: dict[str, DataSummary]) -> list[str]:
    """Data with tools or tool calls needs a chat template that renders them: the recipe's, or
    a local model folder's (a hub model's is checked by the runner, which loads it)."""
    template = recipe.model.chat_template
    if template is None:
        folder = local_path(recipe.model.name_or_path, recipe.base_dir)
        template = chat_template_text(folder) if folder is not None and folder.is_dir() else None
    if template is None:
        return []
    problems = []
    for field, summary in summaries.items():
        why = template_problem(template, summary.uses_tools, summary.uses_calls)
        if why:
            problems.append(
                f"{field}: {summary.path}: {why}; use a model whose chat template renders tools, "
                "or set model.chat_template to one that does"
            )
    return problems


def data_report(recipe: Recipe, summaries: dict[str, DataSummary]) -> list[str]:
    """One line per data source of the recipe: its field, file, detected format and the rows
    the run will use (a hub dataset: its id, read and checked by the runner)."""
    lines = []
    for field, source, _ in data_sources(recipe):
        summary = summaries.get(field)
        if summary is None:
            hub = f"hub dataset {source.path}, split {source.split}: read by the runner"
            lines.append(f"{field}: {hub}")
            continue
        used = summary.used(source)
        lines.append(f"{field}: {summary.report(used)}")
    return lines


def check_inputs(
    recipe: Recipe, known: Mapping[str, DataSummary] | None = None
) -> dict[str, DataSummary]:
    """Check every local model folder, every row of each local data file, and the rewards against
    that data; one UserInputError lists every problem, each line starting with its field.
    What each local data file holds, by its recipe field. A file in `known` (by field: what
    `checked_data.unchanged` vouches for) is not read again; its summary stands."""
    unsafe = unsafe_references(recipe)
    if unsafe:  # never open, stat deeper or import from them: a FIFO alone would block a read
        raise UserInputError("\n".join(unsafe))
    problems: list[str] = []
    hints: list[str] = []
    summaries: dict[str, DataSummary] = {}
    for field, source, accepted in data_sources(recipe):
        path = local_path(source.path, recipe.base_dir)
        if path is None:
            continue
        if known and field in known:
            summaries[field] = known[field]
            continue
        names = TurnNames(source.fields, source.roles)
        try:
            summaries[field] = check_local_data(
                path, source.columns, source.format, accepted, names
            )
        except DataError as exc:
            problems += [f"{field}: {line}" for line in exc.lines]
            hints += [exc.hint] if exc.hint else []
    if not problems:
        for problem, hint in [
            *mixture_problems(recipe, summaries),
            *split_and_label_problems(recipe, summaries),
            *prompt_and_template_problems(recipe, summaries),
        ]:
            problems.append(problem)
            hints += [hint] if hint else []
    if recipe.rewards and not problems:
        # Only on sound data: the rewards read its columns and are called on its first rows.
        rows = sample_rows(recipe.data.train_sources()[0][1], recipe.base_dir)
        for error in reward_problems(recipe, summaries, rows):
            problems.append(str(error))
            hints += [error.hint] if error.hint else []
    problems += _template_problems(recipe, summaries)
    config_problem = _config_file_problem(recipe)
    model_problems = _model_problems(recipe)
    facts = local_facts(recipe)
    if facts is not None and not model_problems and not problems:
        # On a sound model folder and data: the first row rendered with the template in use.
        problems += render_problems(recipe, facts, recipe.model.name_or_path)
    problems = model_problems + problems + ([config_problem] if config_problem else [])
    if problems:
        raise UserInputError("\n".join(problems), hint=hints[0] if hints else None)
    return summaries
