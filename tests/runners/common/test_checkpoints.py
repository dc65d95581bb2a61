"""Checkpoint rotation on disk: what a rotation cut short by a kill leaves is cleared next time."""

from __future__ import annotations

from pathlib import Path

from aligntune.runners.common import checkpoints


def staged(checkpoints_dir: Path, step: int) -> Path:
    """A checkpoint the way the trainer writes one into staging, published."""
    folder = checkpoints.staging_dir(checkpoints_dir) / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    return checkpoints.publish(folder, checkpoints_dir, step)


def test_a_checkpoint_half_deleted_by_a_killed_rotation_is_removed_by_the_next(
    tmp_path: Path,
) -> None:
    root = tmp_path / "checkpoints"
    for step in (2, 4, 6):
        staged(root, step)
    # Killed while rotation deleted checkpoint-2: its weights are gone, its marker is left.
    (root / "checkpoint-2" / "adapter_model.safetensors").unlink()
    staged(root, 8)
    removed = checkpoints.rotate(root, keep=2)
    assert sorted(p.name for p in removed) == ["checkpoint-2", "checkpoint-4"]
    assert sorted(p.name for p in root.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8"]


def test_an_unfinished_checkpoint_newer_than_the_last_good_one_is_kept_for_resume_to_name(
    tmp_path: Path,
) -> None:
    root = tmp_path / "checkpoints"
    staged(root, 2)
    (root / "checkpoint-4").mkdir()  # an older aligntune's save cut short: resume skips it
    assert checkpoints.rotate(root, keep=1) == []
    assert checkpoints.newest_complete(root)[0] == root / "checkpoint-2"
