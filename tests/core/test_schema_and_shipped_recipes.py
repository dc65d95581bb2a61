"""The exported JSON Schema is current; every shipped recipe is valid and points editors at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from aligntune.core.loader import load_recipe
from aligntune.core.schema import recipe_schema_text

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "recipes").rglob("*.yaml"))


def test_recipe_schema_file_is_current() -> None:
    shipped = (REPO / "recipes/recipe.schema.json").read_text(encoding="utf-8")
    assert shipped == recipe_schema_text(), (
        "recipes/recipe.schema.json is stale: python -m aligntune.core.schema "
        "recipes/recipe.schema.json"
    )


def test_schema_documents_every_field() -> None:
    import json

    schema = json.loads(recipe_schema_text())
    undocumented = [
        f"{name}.{field}"
        for name, definition in schema["$defs"].items()
        for field, prop in definition.get("properties", {}).items()
        if field != "name" and "description" not in prop
    ]
    assert undocumented == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_recipe_is_valid_and_declares_the_schema(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    schema = (path.parent / first_line.split("$schema=")[-1]).resolve()
    assert first_line.startswith("# yaml-language-server: $schema=")
    assert schema == (REPO / "recipes/recipe.schema.json").resolve()
    load_recipe(path)
