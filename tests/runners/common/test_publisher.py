"""Checkpoints published in the background: in order, rotated, and a failure not lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from aligntune.runners.common import checkpoints


def staged(root: Path, step: int) -> Path:
    folder = checkpoints.staging_dir(root) / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 4096)
    return folder


def test_each_checkpoint_is_published_before_the_next_and_old_ones_rotate(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    publisher = checkpoints.Publisher(root, keep=2)
    announced = []
    for step in (10, 20, 30):
        publisher.start(staged(root, step), step)
        announced.append(publisher.wait())
    assert announced == [root / "checkpoint-10", root / "checkpoint-20", root / "checkpoint-30"]
    assert sorted(p.name for p in root.glob("checkpoint-*")) == ["checkpoint-20", "checkpoint-30"]
    assert (root / "LATEST").read_text().strip() == "checkpoint-30"
    assert all(checkpoints.check_complete(root / f"checkpoint-{s}") is None for s in (20, 30))
    assert publisher.wait() is None and not publisher.done


def test_starting_the_next_publication_waits_for_the_previous_one(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    publisher = checkpoints.Publisher(root, keep=5)
    publisher.start(staged(root, 1), 1)
    publisher.start(staged(root, 2), 2)  # the first is complete before the second starts
    assert publisher.wait() == root / "checkpoint-2"
    assert checkpoints.check_complete(root / "checkpoint-1") is None


def test_a_failed_publication_is_raised_to_whoever_waits_and_publishes_nothing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "checkpoints"
    publisher = checkpoints.Publisher(root, keep=2)
    publisher.start(staged(root, 5), 5)
    assert publisher.wait() == root / "checkpoint-5"
    gone = checkpoints.staging_dir(root) / "checkpoint-10"  # vanished: no marker can be written
    publisher.start(gone, 10)
    with pytest.raises(FileNotFoundError):
        publisher.wait()
    assert publisher.wait() is None  # raised once, then cleared
    assert (root / "LATEST").read_text().strip() == "checkpoint-5"
    assert not (root / "checkpoint-10").exists()
