"""The docs point at tests and modules that exist: a renamed test must not leave a page lying."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted((REPO / "docs").rglob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_test_file_a_page_names_exists(page: Path) -> None:
    named = set(re.findall(r"`(tests/[\w/.-]+\.py)(?:::\w+)?`", page.read_text(encoding="utf-8")))
    missing = sorted(path for path in named if not (REPO / path).is_file())
    assert not missing, f"{page.relative_to(REPO)} names {missing}"
