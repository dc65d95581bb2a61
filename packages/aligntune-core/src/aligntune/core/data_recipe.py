"""The rules between a recipe's data settings and what its local files hold, checked on the
summaries of every local source: the rows the run will use (`max_samples`, `weight`, the mixture,
`eval_fraction`) and their labels, the system prompt, a chat template for conversations, and the
columns a mixture joins into one table. A source only the runner reads (hub data, parquet rows)
leaves a rule to the runner, which applies the same one.
"""

from __future__ import annotations

from pathlib import Path

from aligntune.core.data import CONVERSATION_FORMATS, FORMAT_COLUMNS, text_with_turns
from aligntune.core.data_check import DataSummary
from aligntune.core.data_feedback import both_kinds_problem
from aligntune.core.mixture import SPLIT_HINT, mix, select_rows, split_eval, split_problem
from aligntune.core.model_folder import chat_template_text
from aligntune.core.paths import local_path
from aligntune.core.recipe import Recipe
from aligntune.core.sections import DataSource

Problem = tuple[str, str | None]
"""One located problem and its hint."""

_TURN_COLUMNS = ("prompt", "completion", "chosen", "rejected")
"""Columns that hold text or turns; a mixture makes the text rows turns when another has turns."""
_WHOLE_ROW = ("prompt", "text")
"""Formats whose rows reach the trainer with every column (the rewards read the others)."""


def _summaries(
    sources: list[tuple[str, DataSource]], summaries: dict[str, DataSummary]
) -> list[tuple[str, DataSource, DataSummary]] | None:
    """Each source with its summary; None when the runner alone reads one of them."""
    found = [(field, source, summaries.get(field)) for field, source in sources]
    if any(summary is None for _, _, summary in found):
        return None
    return [(field, source, summary) for field, source, summary in found if summary is not None]


def _used_labels(recipe: Recipe, sources: list[tuple[str, DataSource, DataSummary]]) -> list[int]:
    """The label of each row the run uses, in the order the runner mixes them."""
    seed = recipe.training.seed
    parts = [
        select_rows(summary.labels or b"", source.max_samples, source.weight, seed)
        for _, source, summary in sources
    ]
    return mix(parts, seed)


def _as_read(sources: list[tuple[str, DataSource, DataSummary]]) -> bool:
    """Whether the run uses one file's rows as they are (no max_samples, weight or mixture)."""
    source = sources[0][1]
    return len(sources) == 1 and source.max_samples is None and source.weight is None


def split_and_label_problems(recipe: Recipe, summaries: dict[str, DataSummary]) -> list[Problem]:
    """`eval_fraction` leaves rows on both sides; feedback data has both kinds of label in the
    rows the run trains on and in those it evaluates on (all sources together)."""
    train = _summaries(recipe.data.train_sources(), summaries)
    if train is None:
        return []
    fraction = recipe.data.eval_fraction
    problems: list[Problem] = []
    hint = "add rows of the missing kind, or change max_samples, weight or eval_fraction"
    if fraction is not None:
        split = split_problem(sum(s.used(src) for _, src, s in train), fraction)
        if split is not None:
            return [(split, SPLIT_HINT)]
    if any(summary.labels is None for _, _, summary in train):
        return []
    labels = _used_labels(recipe, train)
    groups: list[tuple[str, list[int]]] = [("data.train", labels)]
    if fraction is not None:
        kept, held = split_eval(labels, fraction, recipe.training.seed)
        groups = [("data.train", kept), ("data.eval", held)]
    elif recipe.data.eval is not None:
        evaluated = _summaries([("data.eval", recipe.data.eval)], summaries)
        if evaluated is not None and evaluated[0][2].labels is not None:
            groups.append(("data.eval", _used_labels(recipe, evaluated)))
    for field, group in groups:
        problem = both_kinds_problem(group)
        if problem is None:
            continue
        if field == "data.train" and fraction is None and _as_read(train):
            problems.append((f"{train[0][0]}: {train[0][2].path}: {problem}", None))
        elif field == "data.eval" and fraction is None:
            problems.append((f"data.eval: {summaries['data.eval'].path}: {problem}", None))
        elif field == "data.eval":
            where = "the rows data.eval_fraction holds out for evaluation, drawn by training.seed"
            problems.append((f"data.eval ({where}): {problem}", hint))
        else:
            problems.append((f"data.train ({_train_rows(train, fraction)}): {problem}", hint))
    return problems


def _train_rows(sources: list[tuple[str, DataSource, DataSummary]], fraction: float | None) -> str:
    """Which rows the run trains on, in words: "the sources together, first max_samples"."""
    parts = ["the sources together"] if len(sources) > 1 else []
    if any(source.max_samples is not None for _, source, _ in sources):
        parts.append("first max_samples")
    if any(source.weight is not None for _, source, _ in sources):
        parts.append("times weight")
    if fraction is not None:
        parts.append("less those data.eval_fraction holds out")
    return ", ".join(parts)


def mixture_problems(recipe: Recipe, summaries: dict[str, DataSummary]) -> list[Problem]:
    """A mixture whose local sources join plain text with conversations, or give one column two
    types (the trainer's table holds one type per column)."""
    train = _summaries(recipe.data.train_sources(), summaries)
    if train is None or len(train) < 2:
        return []
    formats = {summary.format for _, _, summary in train}
    if "text" in formats and formats & CONVERSATION_FORMATS:
        return [(f"data.train: {text_with_turns(formats)}", None)]
    problems = _prompted_problems(train)
    first: dict[str, tuple[str, Path, str]] = {}
    for field, _, summary in train:
        if summary.format not in _WHOLE_ROW:
            continue
        for column, kind in sorted(summary.kinds.items()):
            if column in _TURN_COLUMNS or column in FORMAT_COLUMNS[summary.format]:
                continue
            seen = first.setdefault(column, (field, summary.path, kind))
            if seen[2] != kind:
                what = (
                    f"{field}: {summary.path}: column {column} holds a {kind}, but in "
                    f"{seen[0]} ({seen[1]}) a {seen[2]}; the sources of a mixture become one "
                    "table, which holds one type per column"
                )
                problems.append((what, f"write {column} as a {seen[2]} in every source"))
    return problems


def _prompted_problems(sources: list[tuple[str, DataSource, DataSummary]]) -> list[Problem]:
    """Preference sources all have prompts or none do (each file's rows are checked alike)."""
    pairs = [(f, s) for f, _, s in sources if s.format == "preference"]
    with_prompt = [f for f, s in pairs if "prompt" in s.kinds]
    if not with_prompt or len(with_prompt) == len(pairs):
        return []
    without = [f for f, s in pairs if "prompt" not in s.kinds]
    what = (
        f"data.train: the pairs of {', '.join(with_prompt)} have a prompt, those of "
        f"{', '.join(without)} do not; the mixture's pairs all have a prompt or none do"
    )
    return [(what, "add the prompt column to every source, or move the prompts into the turns")]


def _lacks_template(recipe: Recipe) -> bool:
    """Whether the run will have no chat template: none in the recipe, none in the local model
    folder (a hub model's tokenizer is checked by the runner, which loads it)."""
    if recipe.model.chat_template is not None:
        return False
    folder = local_path(recipe.model.name_or_path, recipe.base_dir)
    return folder is not None and folder.is_dir() and chat_template_text(folder) is None


def _turns(summary: DataSummary) -> bool:
    """Whether a source's rows hold turns."""
    if summary.format in CONVERSATION_FORMATS:
        return True
    return any(summary.kinds.get(column) == "list" for column in _TURN_COLUMNS)


def prompt_and_template_problems(
    recipe: Recipe, summaries: dict[str, DataSummary]
) -> list[Problem]:
    """A system prompt needs turns to precede, and turns need a chat template to render them."""
    system = recipe.data.system_prompt is not None
    problems: list[Problem] = []
    for field, summary in summaries.items():
        if system and summary.format == "text":
            what = (
                f"data.system_prompt: {field} ({summary.path}) is plain text, which has no turns "
                "to put a system message before; it needs conversations or prompts"
            )
            problems.append((what, "remove data.system_prompt, or write the text as prompts"))
    if not _lacks_template(recipe):
        return problems
    needs = [
        f"{field} ({summary.path}) holds conversations"
        for field, summary in summaries.items()
        if _turns(summary)
    ]
    if system:
        needs.append("data.system_prompt is set")
    if needs:
        what = (
            f"model.name_or_path: {recipe.model.name_or_path} has no chat template, and "
            f"{'; '.join(needs)}: only a chat template renders them"
        )
        problems.append((what, "set model.chat_template to the one the model was trained with"))
    return problems
