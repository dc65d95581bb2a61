"""A rebuild that replaces an image's tag removes the build it replaced (rebuilds do not fill the
disk), never an image that still has a tag or a container."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from image_helpers import docker

from aligntune.cli.images import LOCAL_BASE, PUBLIC_BASE, image_id, remove_replaced

pytestmark = pytest.mark.docker


def build(tag: str, label: str) -> str:
    """A one-layer image on the base image that is present, tagged `tag`; its id."""
    base = next(t for t in (PUBLIC_BASE, LOCAL_BASE) if image_id(t) is not None)
    dockerfile = f"FROM {base}\nLABEL aligntune.test={label}\nRUN echo {label} > /label\n"
    done = subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-"], input=dockerfile, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    found = image_id(tag)
    assert found is not None
    return found


def test_the_replaced_build_is_removed_but_one_still_in_use_is_kept() -> None:
    tag = f"aligntune-test/rebuild:{uuid.uuid4().hex[:8]}"
    kept = f"{tag}-kept"
    try:
        first = build(tag, "one")
        second = build(tag, "two")
        assert remove_replaced(first, tag) > 0
        assert docker("image", "inspect", first).returncode != 0
        assert image_id(tag) == second

        assert docker("tag", second, kept).returncode == 0  # a second name still uses it
        build(tag, "three")
        assert remove_replaced(second, tag) == 0
        assert image_id(kept) == second
        assert remove_replaced(image_id(tag), tag) == 0  # nothing was replaced
    finally:
        docker("image", "rm", "-f", tag, kept)
