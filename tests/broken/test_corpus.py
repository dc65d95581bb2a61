"""Every case of the broken-input corpus (tests/broken/cases/*.py) through validate, plan and run:
its exit code, a located message, no traceback, nothing started, nothing written."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from broken_harness import Case, check_case

CASES_DIR = Path(__file__).parent / "cases"


def _load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(CASES_DIR.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"broken_cases_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cases.extend(module.CASES)
    return cases


CASES = _load_cases()
RUNS = [(case, args) for case in CASES for args in case.commands]


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize(("case", "args"), RUNS, ids=[f"{c.id}-{a[0]}" for c, a in RUNS])
def test_broken_input(case, args, tmp_path, monkeypatch, capsys) -> None:
    check_case(case, args, tmp_path, monkeypatch, capsys)
