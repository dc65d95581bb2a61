"""aligntune's version is written once, in `aligntune/core/version.py`; every copy must agree.

The packages read it (hatchling's version source); what cannot read it (dependency pins, the
Dockerfiles' ARG defaults, compose's defaults, the workflows' and the docs' image tags) is
checked here, so a bump that misses a copy fails.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from aligntune.core.version import VERSION

REPO = Path(__file__).resolve().parents[2]
VERSION_FILE = REPO / "packages" / "aligntune-core" / "src" / "aligntune" / "core" / "version.py"
PYPROJECTS = sorted(REPO.glob("packages/*/pyproject.toml"))

COPIES = {
    "image tag": re.compile(r"aligntune/[^:\n]+:(?P<version>[0-9][^\s`'\"]*?)-(?:cpu|cuda)"),
    "VERSION build arg": re.compile(r"\bVERSION=(?P<version>[0-9][^\s`'\"]*)"),
    "compose default": re.compile(r"\$\{ALIGNTUNE_VERSION:-(?P<version>[^}]+)\}"),
    "aligntune pin": re.compile(r"\baligntune-[a-z-]+==(?P<version>[^\s\"',]+)"),
}
FILES = [
    *PYPROJECTS,
    *REPO.glob("compose*.yaml"),
    *REPO.glob(".github/workflows/*.yml"),
    *REPO.glob("images/*/Dockerfile"),
    *REPO.glob("images/*/README.md"),
    *REPO.glob("packages/*/README.md"),
    REPO / "README.md",
    # benchmarks.md is left out: its tables record what was measured on a given version.
    *(path for path in REPO.glob("docs/**/*.md") if path.name != "benchmarks.md"),
]


def written_copies() -> list[tuple[str, str, str]]:
    """(file, kind, version) for every place outside version.py that spells the version."""
    found = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        for kind, pattern in COPIES.items():
            for match in pattern.finditer(text):
                found.append((str(path.relative_to(REPO)), kind, match["version"]))
    return found


def test_every_written_copy_of_the_version_is_version_py() -> None:
    copies = written_copies()
    # Each kind and each file that must spell the version is still found: a pattern that
    # stopped matching would let every bump pass.
    assert {kind for _, kind, _ in copies} == set(COPIES)
    must = {"compose.yaml", ".github/workflows/gpu.yml", ".github/workflows/images.yml"}
    must |= {f"images/{image}/Dockerfile" for image in ("trl-runner", "unsloth-runner")}
    must |= {str(path.relative_to(REPO)) for path in PYPROJECTS if "core" not in str(path)}
    assert must <= {file for file, _, _ in copies}
    assert [copy for copy in copies if copy[2] != VERSION] == []


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=lambda path: path.parent.name)
def test_every_package_reads_its_version_from_version_py(pyproject: Path) -> None:
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    assert "version" not in config["project"]
    assert config["project"]["dynamic"] == ["version"]
    source = pyproject.parent / config["tool"]["hatch"]["version"]["path"]
    assert source.resolve() == VERSION_FILE
