"""The recipe's JSON Schema, for editors (`# yaml-language-server: $schema=...`) and docs.

Regenerate the shipped copy with: python -m aligntune.core.schema recipes/recipe.schema.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aligntune.core.recipe import Recipe


def recipe_schema_text() -> str:
    """The JSON Schema of a recipe, as the text written to recipes/recipe.schema.json."""
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aligntune recipe"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if target is None:
        sys.stdout.write(recipe_schema_text())
    else:
        target.write_text(recipe_schema_text(), encoding="utf-8")
