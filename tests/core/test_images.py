"""Which image a docker run uses: the local build wins when present, else the released image of
this version pinned by digest (pulled per --pull, from ALIGNTUNE_REGISTRY when set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aligntune.core.backends import get_backend
from aligntune.core.errors import UsageError
from aligntune.core.images import (
    MIRROR_ENV,
    RELEASED_IMAGES_FILE,
    ReleasedImage,
    choose_image,
    read_released,
    record_released,
    released_image,
)
from aligntune.core.loader import recipe_from_dict
from aligntune.core.plan import HostInfo
from aligntune.core.selection import select_backend
from aligntune.core.version import VERSION

TRL = get_backend("trl")
DIGEST = "sha256:" + "ab" * 32
LOCAL = f"aligntune/trl-runner:{VERSION}-cpu"
RELEASED = f"registry.example:5000/aligntune/trl-runner@{DIGEST}"


@pytest.fixture
def released_file(tmp_path: Path) -> Path:
    """A released-images file as `aligntune images publish` writes it, for the trl cpu image."""
    path = tmp_path / "released_images.json"
    image = ReleasedImage("registry.example:5000", TRL.image_repository, f"{VERSION}-cpu", DIGEST)
    record_released(ReleasedImage(**{**image.as_record(), "download_bytes": 2_100_000_000}), path)
    return path


def test_a_development_checkout_records_no_released_image() -> None:
    # The release workflow fills this file before building the wheels; the checkout never does.
    assert json.loads(RELEASED_IMAGES_FILE.read_text()) == {"images": []}
    choice = choose_image(TRL, "cpu", frozenset())
    assert (choice.reference, choice.source, choice.pull) == (LOCAL, "local build", False)
    assert "development checkout" in choice.why


def test_recording_replaces_the_same_image_and_keeps_the_others(released_file: Path) -> None:
    newer = ReleasedImage("r:1", TRL.image_repository, f"{VERSION}-cpu", "sha256:" + "cd" * 32)
    cuda = ReleasedImage("r:1", TRL.image_repository, f"{VERSION}-cuda", "sha256:" + "ef" * 32)
    record_released(newer, released_file)
    record_released(cuda, released_file)
    assert read_released(released_file) == [newer, cuda]


def test_an_image_recorded_for_another_version_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "released_images.json"
    record_released(ReleasedImage("r:1", TRL.image_repository, "0.0.1-cpu", DIGEST), path)
    assert released_image(TRL, "cpu", path) is None


def test_the_local_build_wins_when_present(released_file: Path) -> None:
    choice = choose_image(TRL, "cpu", frozenset({LOCAL}), "missing", released_file)
    assert (choice.reference, choice.present, choice.pull) == (LOCAL, True, False)
    assert RELEASED in choice.why


@pytest.mark.parametrize(
    ("pull", "present", "pulls"),
    [
        ("missing", frozenset(), True),
        ("missing", frozenset({RELEASED}), False),
        ("never", frozenset(), False),
        ("always", frozenset({LOCAL, RELEASED}), True),
    ],
)
def test_the_released_image_is_pulled_by_digest_per_the_pull_policy(
    released_file: Path, pull: str, present: frozenset[str], pulls: bool
) -> None:
    choice = choose_image(TRL, "cpu", present, pull, released_file)  # type: ignore[arg-type]
    assert (choice.reference, choice.source, choice.pull) == (RELEASED, "release", pulls)
    assert choice.download_bytes == (2_100_000_000 if pulls else None)


def test_the_mirror_variable_keeps_the_digest(
    released_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIRROR_ENV, "mirror.internal:5000/")
    image = released_image(TRL, "cpu", released_file)
    assert image is not None
    assert image.reference == f"mirror.internal:5000/aligntune/trl-runner@{DIGEST}"


@pytest.mark.parametrize("value", ["https://mirror.internal:5000", "mirror.internal :5000"])
def test_a_mirror_given_as_a_url_is_refused_with_the_name_to_use(
    released_file: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(MIRROR_ENV, value)
    with pytest.raises(UsageError, match="without a scheme or spaces") as refused:
        released_image(TRL, "cpu", released_file)
    assert refused.value.hint == f"e.g. {MIRROR_ENV}=mirror.internal:5000"


def test_the_plan_says_which_image_will_run_and_whether_it_is_pulled(make_recipe) -> None:  # type: ignore[no-untyped-def]
    recipe = recipe_from_dict(make_recipe("sft"))
    plan = select_backend(recipe, HostInfo(docker_available=True, images=frozenset({LOCAL})))
    assert f"image:     {LOCAL} (present, local build)" in plan.summary_lines()
    missing = select_backend(recipe, HostInfo(docker_available=True))
    assert f"image:     {LOCAL} (not built)" in missing.summary_lines()
    pulled = plan.model_copy(
        update={
            "image": RELEASED,
            "image_available": False,
            "image_source": "release",
            "image_pull": True,
            "image_download_bytes": 2_100_000_000,
        }
    )
    assert f"image:     {RELEASED} (will be pulled, 2.10 GB)" in pulled.summary_lines()
    unsized = pulled.model_copy(update={"image_download_bytes": None})
    assert f"image:     {RELEASED} (will be pulled)" in unsized.summary_lines()
