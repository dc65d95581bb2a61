"""The backend and algorithm registries are the only lists: code and docs derive from them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from aligntune.core.algorithm_sections import ALGORITHM_SECTIONS
from aligntune.core.algorithms import ALGORITHM_NAMES, ALGORITHMS, get_algorithm
from aligntune.core.backends import BACKEND_NAMES, BACKENDS, get_backend
from aligntune.core.loader import recipe_from_dict
from aligntune.core.recipe import Recipe

REPO = Path(__file__).resolve().parents[2]
REGISTRIES = {"aligntune/core/backends.py", "aligntune/core/algorithms.py"}
ALLOWED = {
    # The discriminated union needs each section's name as a Literal; the test below checks that
    # these Literals are exactly the registry's names.
    ("aligntune/core/algorithm_sections.py", "sft"),
    ("aligntune/core/algorithm_sections.py", "dpo"),
    ("aligntune/core/algorithm_sections.py", "kto"),
    ("aligntune/core/algorithm_sections.py", "ppo"),
    # TRL's loss_type values, which happen to share the algorithms' names.
    ("aligntune/core/algorithm_sections.py", "grpo"),
    ("aligntune/core/algorithm_sections.py", "gspo"),
    ("aligntune/core/algorithm_sections.py", "dapo"),
    ("aligntune/core/algorithm_sections.py", "dr_grpo"),
    # The trl library (a package name), not the backend.
    ("aligntune/runners/common/manifest.py", "trl"),
    ("aligntune/runners/unsloth/stack.py", "trl"),
    # Unsloth's own gradient-checkpointing mode, a value of its API, and its package name.
    ("aligntune/runners/unsloth/models.py", "unsloth"),
    ("aligntune/runners/unsloth/backend.py", "unsloth"),
}
"""(module, literal) pairs that spell a registry name for another reason, each with it."""


def _modules() -> list[tuple[str, Path]]:
    return [
        (path.relative_to(next(p for p in path.parents if p.name == "src")).as_posix(), path)
        for path in sorted(REPO.glob("packages/*/src/aligntune/**/*.py"))
    ]


def _string_constants(tree: ast.AST) -> list[ast.Constant]:
    """String literals that are not docstrings."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
    ]


def test_no_module_spells_a_backend_or_algorithm_name_outside_the_registries() -> None:
    names = set(BACKEND_NAMES) | set(ALGORITHM_NAMES)
    spellings = [
        f"{path}:{node.lineno}: {node.value!r}"
        for module, path in _modules()
        if module not in REGISTRIES
        for node in _string_constants(ast.parse(path.read_text(encoding="utf-8")))
        if (node.value in names and (module, node.value) not in ALLOWED)
        or any("-runner" in node.value and b in node.value for b in BACKEND_NAMES)
        # A runner may name its own modules.
        or any(
            f"aligntune.runners.{b}" in node.value
            and not module.startswith(f"aligntune/runners/{b}/")
            for b in BACKEND_NAMES
        )
    ]
    assert not spellings, "derive these from aligntune.core.backends / algorithms:\n" + "\n".join(
        spellings
    )


def test_the_recipe_sections_name_exactly_the_registered_algorithms() -> None:
    assert set(ALGORITHM_SECTIONS) == set(ALGORITHM_NAMES)
    recipe_backends = Recipe.model_json_schema()["properties"]["backend"]["enum"]
    assert recipe_backends == ["auto", *BACKEND_NAMES]


def test_every_algorithm_names_only_registered_backends_and_defaults_its_own_settings() -> None:
    for algorithm in ALGORITHMS:
        assert set(algorithm.backends) <= set(BACKEND_NAMES), algorithm.name
        section = ALGORITHM_SECTIONS[algorithm.name]
        unknown = set(algorithm.defaults) - set(section.model_fields)
        assert not unknown, f"{algorithm.name}: defaults for fields it has not: {unknown}"
        for key, value in algorithm.defining_settings.items():
            if key in algorithm.defaults:
                assert algorithm.defaults[key] == value, (algorithm.name, key)


def _table(path: Path, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header row starts with `header`, cells stripped."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_algorithm_table_in_the_docs_is_the_registry() -> None:
    rows = _table(REPO / "docs/algorithms.md", "| algorithm | recipe `algorithm.name`")
    documented = {row[1].strip("`"): (row[4], row[5], row[6]) for row in rows}
    resumable = {True: "yes", False: "no"}
    assert documented == {
        a.name: (", ".join(a.backends), a.reference_model, resumable[a.resumable])
        for a in ALGORITHMS
    }


def test_the_readme_support_matrix_is_the_registry() -> None:
    header = "| algorithm | " + " | ".join(b.title for b in BACKENDS) + " |"
    rows = _table(REPO / "README.md", header)
    assert len(rows) == len(ALGORITHMS)
    for row, algorithm in zip(rows, ALGORITHMS, strict=True):
        expected = ["yes" if b in algorithm.backends else "no" for b in BACKEND_NAMES]
        assert row[1:] == expected, (row[0], algorithm.name)


def _doc_value(cell: str, epsilon: str) -> object:
    text = cell.replace("*", "").strip()
    if text == "= epsilon":
        return _doc_value(epsilon, epsilon)
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text)
    except ValueError:
        return text


@pytest.mark.parametrize("column", [1, 2, 3, 4])
def test_the_group_rl_defaults_table_is_what_a_loaded_recipe_holds(column, make_recipe) -> None:
    table = "| field | grpo"
    rows = {row[0].split()[0].strip("`"): row for row in _table(REPO / "docs/algorithms.md", table)}
    name = _table_header(REPO / "docs/algorithms.md", table)[column]
    recipe = recipe_from_dict(make_recipe(name))
    for field, row in rows.items():
        if field == "reward_weights":
            continue
        documented = _doc_value(row[column], rows["epsilon"][column])
        assert getattr(recipe.algorithm, field) == documented, (name, field)
        if field in get_algorithm(name).defining_settings:
            assert row[column].startswith("**"), f"{name}.{field} is defining: bold in the docs"


def _table_header(path: Path, header: str) -> list[str]:
    line = next(x for x in path.read_text(encoding="utf-8").splitlines() if x.startswith(header))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_backend_comparison_lists_the_registry_architectures() -> None:
    rows = {row[0]: row for row in _table(REPO / "docs/backends/comparison.md", "| | TRL |")}
    unsloth = get_backend("unsloth")
    assert unsloth.architectures is not None
    documented = {a.strip() for a in rows["Architectures"][2].split(",")}
    assert documented == set(unsloth.architectures)


def test_the_unsloth_page_lists_the_defaults_it_changes() -> None:
    rows = _table(REPO / "docs/backends/unsloth.md", "| setting | Unsloth's default")
    documented = {row[0].strip("`"): row[1] for row in rows}
    assert documented == dict(get_backend("unsloth").changed_defaults)
