"""A local image records the sources it was built from; `plan` and `run` warn when the shared tag
holds a build of other sources (another checkout, or this one before an edit)."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_build_context import fake_checkout
from test_container_spec import make_plan

from aligntune.cli.image_sources import (
    SOURCE_LABEL,
    launcher_checkout,
    source_sha256,
    stale_image_warning,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_digest_follows_what_the_image_installs(tmp_path: Path) -> None:
    fake_checkout(tmp_path)
    first = source_sha256(tmp_path, "trl-runner")
    # Build debris, the wheelhouse, other images' packages and runs are not installed.
    shutil.rmtree(tmp_path / "packages/aligntune-core/src/aligntune/core/__pycache__")
    (tmp_path / ".wheelhouse/trl-runner-cpu").mkdir(parents=True)
    (tmp_path / "packages/unsloth-runner/pyproject.toml").write_text("edited")
    (tmp_path / "runs/tiny-sft/status.json").write_text("edited")
    assert source_sha256(tmp_path, "trl-runner") == first
    # An edit to a package the image installs, or to its Dockerfile, is another build.
    recipe = tmp_path / "packages/aligntune-core/src/aligntune/core/recipe.py"
    recipe.write_text("edited")
    second = source_sha256(tmp_path, "trl-runner")
    assert second != first
    (tmp_path / "images/trl-runner/Dockerfile").write_text("edited")
    assert source_sha256(tmp_path, "trl-runner") not in (first, second)


def test_a_build_of_other_sources_is_named_with_the_rebuild() -> None:
    plan = make_plan()
    plan.image_source = "local build"
    assert plan.image is not None
    assert launcher_checkout() == REPO
    rebuild = "rebuild it: aligntune images build trl-runner --device cpu"
    this_build = {SOURCE_LABEL: source_sha256(REPO, "trl-runner")}
    assert stale_image_warning(plan, {plan.image: this_build}) is None
    assert stale_image_warning(plan, {plan.image: {SOURCE_LABEL: "0" * 64}}) == (
        f"image {plan.image} was built from other sources than {REPO}; the runner in it may "
        f"not be this checkout's: {rebuild}"
    )
    assert stale_image_warning(plan, {plan.image: {}}) == (
        f"image {plan.image} does not record which sources it was built from; the runner in it "
        f"may not be this checkout's: {rebuild}"
    )
    assert stale_image_warning(plan, {}) is None  # not built: plan says so already
    plan.image_source = "release"
    assert stale_image_warning(plan, {plan.image: {}}) is None
