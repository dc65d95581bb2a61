"""The recipe's JSON Schema, for editors (`# yaml-language-server: $schema=...`) and docs.

Regenerate the shipped copy with: python -m aligntune.core.schema recipes/recipe.schema.json
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
from pathlib import Path
from types import ModuleType

from aligntune.core import algorithm_sections, recipe, sections
from aligntune.core.recipe import Recipe

RECIPE_MODULES = (recipe, sections, algorithm_sections)
"""The modules whose classes are recipe sections, with their field docs."""


def attribute_docstrings(module: ModuleType) -> dict[str, dict[str, str]]:
    """The string literal under each annotated class attribute, by class and attribute name.

    The recipe's field docs are these docstrings. They are read here, for the schema, rather
    than by pydantic's `use_attribute_docstrings`, which re-reads the source of every class each
    time the recipe module is imported and so slowed every CLI command by about 30 ms.
    """
    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs[node.name] = {
            stmt.target.id: inspect.cleandoc(after.value.value)
            for stmt, after in zip(node.body, node.body[1:], strict=False)
            if isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        }
    return docs


def recipe_schema_text() -> str:
    """The JSON Schema of a recipe, as the text written to recipes/recipe.schema.json."""
    schema = Recipe.model_json_schema()
    docs = {
        name: fields
        for module in RECIPE_MODULES
        for name, fields in attribute_docstrings(module).items()
    }
    definitions = {**schema["$defs"], Recipe.__name__: schema}
    for name, definition in definitions.items():
        for field, prop in definition.get("properties", {}).items():
            if field in docs.get(name, {}):
                prop.setdefault("description", docs[name][field])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aligntune recipe"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if target is None:
        sys.stdout.write(recipe_schema_text())
    else:
        target.write_text(recipe_schema_text(), encoding="utf-8")
