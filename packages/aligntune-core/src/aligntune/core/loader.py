"""Turn a recipe file (or keyword arguments) into a validated Recipe, listing every problem."""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from aligntune.core import recipe_yaml
from aligntune.core.algorithm_sections import ALGORITHM_SECTIONS
from aligntune.core.architectures import TARGET_MODULES, config_model_type, unknown_target_modules
from aligntune.core.errors import RecipeError
from aligntune.core.paths import local_path
from aligntune.core.recipe import MAX_NAME, Recipe
from aligntune.core.recipe_yaml import short_text

Loc = tuple[str | int, ...]
SCHEMA_HINT = "recipes/recipe.schema.json lists every field and its valid values"


def _line_map(root: yaml.Node | None) -> dict[Loc, int]:
    """Map each key path in a composed YAML document to its 1-based line."""
    lines: dict[Loc, int] = {}

    def walk(node: yaml.Node, loc: Loc) -> None:
        lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*loc, str(key.value))
                walk(value, child)
                lines[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*loc, index))

    if root is not None:
        walk(root, ())
    return lines


def _line_of(loc: Loc, lines: Mapping[Loc, int]) -> str:
    """` (line N)` for the innermost part of `loc` that has a line, else nothing."""
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
    return f" (line {line})" if line else ""


def _model_at(loc: Loc, data: Any) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at `loc`, following the algorithm's name."""
    model: type[BaseModel] | None = Recipe
    node = data
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):  # an item of a list of sections (a data mixture)
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        node = node.get(part) if isinstance(node, Mapping) else None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        if part == "algorithm" and model is Recipe:
            name = node.get("name") if isinstance(node, Mapping) else None
            model = ALGORITHM_SECTIONS.get(str(name))
            continue
        model = next(_sections_in(field.annotation), None)
    return model


def _sections_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The sections a field's type holds: itself, or inside a union, list or `Annotated`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    inner = getattr(annotation, "__origin__", None)
    for arg in (*getattr(annotation, "__args__", ()), *([inner] if inner else [])):
        if not isinstance(arg, str):
            yield from _sections_in(arg)


def _format_error(error: Any, data: Any, lines: Mapping[Loc, int]) -> str:
    loc: Loc = tuple(p for p in error["loc"] if not _is_union_tag(p))
    path = ".".join(str(p) for p in loc) or "(recipe)"
    message = error["msg"].removeprefix("Value error, ")
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc[:-1], data)
        valid = sorted(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        message = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
        if valid:
            message += f" (valid: {', '.join(valid)})"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "model_type":
        message = f"expected a mapping of its fields, got {_describe(error['input'])}"
    elif kind == "union_tag_invalid":
        message = message.replace("Input tag", "algorithm").replace(" found using 'name'", "")
    elif kind in ("literal_error", "enum") and "input" in error:
        message = f"{message}, got {_describe(error['input'])}"
    elif kind in _TYPE_ERRORS and "input" in error:
        message = f"{message}, got {_describe(error['input'], text=kind == 'string_type')}"
    return f"{path}: {message}{_line_of(loc, lines)}"


_TYPE_ERRORS = frozenset(
    {"int_type", "int_from_float", "float_type", "finite_number", "bool_type", "string_type"}
    | {"list_type", "dict_type"}
)
"""pydantic's errors for a value of the wrong type, which then say what the value was."""


def _describe(value: Any, *, text: bool = False) -> str:
    """What a wrong value is, in a user's words; `text`: the field wants text (quoting helps)."""
    quote = "; quote it to make it text" if text else ""
    if isinstance(value, bool):
        booleans = "YAML reads yes, no, on, off, true and false as booleans"
        return f"{str(value).lower()} ({booleans}){quote}"
    if isinstance(value, datetime.date):
        return f"{value}, a date{quote}"
    if value is None:
        return "an empty value"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return short_text(value) if isinstance(value, str) else repr(value)


def _is_union_tag(part: str | int) -> bool:
    """pydantic puts the discriminator value and union member names into error locations."""
    return isinstance(part, str) and (
        part in ALGORITHM_SECTIONS
        or part in ("source", "mixture")  # data.train: one source or a list
        or part.startswith(("list[", "dict[", "literal[", "function-"))
        or part == "str"
    )


def recipe_from_dict(
    data: Any,
    *,
    source: str = "<recipe>",
    base_dir: Path | None = None,
    lines: Mapping[Loc, int] | None = None,
) -> Recipe:
    """Validate plain data as a Recipe; a RecipeError lists every problem as `path: message`.

    `lines` maps key paths to their lines in the recipe file, for the messages.
    """
    if not isinstance(data, Mapping):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise RecipeError(source, [f"(recipe): expected a mapping of sections, got {got}"])
    lines = lines or {}
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        problems = [_format_error(e, data, lines) for e in exc.errors(include_url=False)]
        raise RecipeError(source, list(dict.fromkeys(problems)), hint=SCHEMA_HINT) from None
    recipe.with_base_dir(base_dir or Path.cwd())
    problem = _target_modules_problem(recipe, lines)
    if problem:
        raise RecipeError(source, [problem])
    return recipe


def _target_modules_problem(recipe: Recipe, lines: Mapping[Loc, int]) -> str | None:
    """LoRA target modules the local model's architecture does not have (known ones only)."""
    peft = recipe.model.peft
    if peft.method != "lora" or isinstance(peft.target_modules, str):
        return None
    try:
        folder = local_path(recipe.model.name_or_path, recipe.base_dir)
    except OSError:  # an unusable path: the model folder check reports it
        return None
    model_type = config_model_type(folder) if folder is not None else None
    unknown = unknown_target_modules(model_type, peft.target_modules) if model_type else []
    if not model_type or not unknown:
        return None
    loc: Loc = ("model", "peft", "target_modules", peft.target_modules.index(unknown[0]))
    valid = ", ".join(sorted(TARGET_MODULES[model_type]))
    return (
        f"model.peft.target_modules: no module {', '.join(map(short_text, unknown))} in "
        f"{recipe.model.name_or_path} (a {model_type} model); valid: {valid} "
        f"(or target_modules: all-linear){_line_of(loc, lines)}"
    )


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; relative input paths resolve against its folder."""
    file = Path(path)
    data, root = recipe_yaml.parse(recipe_yaml.read_text(file), str(path))
    lines = _line_map(root)
    recipe = recipe_from_dict(data, source=str(path), base_dir=file.parent, lines=lines)
    if recipe.name is None:
        recipe.name = _default_name(file)
    return recipe


def _default_name(file: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in file.stem)
    return stem.lstrip("._-")[:MAX_NAME] or "run"
