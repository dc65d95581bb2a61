"""Every GitHub workflow lints clean with actionlint (syntax, expressions, runner labels, action
versions; .github/actionlint.yaml names the self-hosted GPU runner's label). A workflow that
does not parse runs nothing, and nobody notices until a release."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from aligntune.core.backends import BACKENDS

REPO = Path(__file__).resolve().parents[1]
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def test_every_workflow_lints_clean() -> None:
    workflows = sorted(REPO.glob(".github/workflows/*.yml"))
    assert {path.name for path in workflows} >= {"ci.yml", "images.yml", "gpu.yml", "release.yml"}
    assert ACTIONLINT.is_file(), (
        "actionlint missing: scripts/setup.sh installs it (constraints.txt)"
    )
    done = subprocess.run(
        [str(ACTIONLINT), "-no-color", *map(str, workflows)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actions_are_pinned_to_a_version() -> None:
    uses = re.compile(r"^\s*(?:- )?uses:\s*(\S+)", re.MULTILINE)
    pinned = re.compile(r"^[\w.-]+/[\w./-]+@(?:v\d+(?:\.\d+)*|[0-9a-f]{40})$")
    for path in REPO.glob(".github/workflows/*.yml"):
        actions = uses.findall(path.read_text())
        assert actions, f"{path.name} uses no action: the pattern no longer matches"
        assert [a for a in actions if not pinned.match(a)] == [], path.name


def test_the_release_builds_and_records_every_image_of_the_registry() -> None:
    release = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    matrix = release["jobs"]["images"]["strategy"]["matrix"]["include"]
    built = {(entry["image"], entry["device"]) for entry in matrix}
    assert built == {(b.image_name, device) for b in BACKENDS for device in b.devices}
    merge = "\n".join(step.get("run", "") for step in release["jobs"]["wheels"]["steps"])
    assert f"len(parts) == {len(built)}" in merge
