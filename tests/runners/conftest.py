"""Shared helpers for runner tests: the shipped tiny recipes, rewritten into tmp_path."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "recipes" / "tiny"


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` merged in, nested mappings merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def tiny_recipe_dict(name: str, **changes: Any) -> dict[str, Any]:
    """A shipped tiny recipe as data, with `changes` merged in (paths still relative)."""
    data = yaml.safe_load((TINY / f"{name}.yaml").read_text(encoding="utf-8"))
    return merge(data, changes)


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """A private copy of recipes/tiny's model, data and rewards.py (tests may break them)."""
    target = tmp_path / "tiny"
    shutil.copytree(TINY / "model", target / "model")
    shutil.copytree(TINY / "data", target / "data")
    shutil.copy(TINY / "rewards.py", target / "rewards.py")
    return target


@pytest.fixture
def tiny_recipe(tiny_dir: Path) -> Callable[..., Path]:
    """Write a tiny recipe (with changes) next to the private model/data; returns its path."""

    def write(name: str, file: str | None = None, **changes: Any) -> Path:
        path = tiny_dir / (file or f"{name}.yaml")
        path.write_text(yaml.safe_dump(tiny_recipe_dict(name, **changes)), encoding="utf-8")
        return path

    return write
