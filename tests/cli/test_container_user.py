"""`--user`: the container's uid:gid, and the folders it must be able to write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aligntune.cli import container_user
from aligntune.cli.container_user import (
    ContainerUser,
    cache_for,
    check_run_directory,
    hand_over,
)
from aligntune.core.errors import UsageError, UserInputError

OTHER = ContainerUser(12345, 12345)


def test_user_is_numeric_uid_and_gid() -> None:
    assert ContainerUser.parse("1000:100") == ContainerUser(1000, 100)
    assert ContainerUser.parse("1000") == ContainerUser(1000, 1000)
    assert ContainerUser.parse(None) == ContainerUser(os.getuid(), os.getgid())
    for bad in ("alice", "1000:", ":100", "-1", "1000:100:1"):
        with pytest.raises(UsageError, match="numeric UID or UID:GID"):
            ContainerUser.parse(bad)


@pytest.mark.parametrize(
    ("owner", "mode", "writable"),
    [
        ((12345, 1), 0o755, True),
        ((12345, 1), 0o555, False),
        ((1, 12345), 0o775, True),
        ((1, 12345), 0o755, False),
        ((1, 1), 0o777, True),
        ((1, 1), 0o775, False),
        ((1, 1), 0o776, False),  # writable but not searchable: no file can be made in it
    ],
)
def test_write_permission_follows_owner_group_and_mode(tmp_path, owner, mode, writable) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    folder = tmp_path / "f"
    folder.mkdir()
    os.chown(folder, *owner)
    folder.chmod(mode)
    assert OTHER.can_write(folder) is writable


def test_a_cache_made_by_a_root_launcher_is_handed_to_the_user(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip("handing over needs root")
    cache = cache_for(OTHER, tmp_path / "hf")
    assert (cache.stat().st_uid, cache.stat().st_gid) == (12345, 12345)


def test_an_existing_cache_the_user_cannot_write_is_named_with_its_owner(tmp_path) -> None:
    cache = tmp_path / "hf"
    cache.mkdir(mode=0o755)
    with pytest.raises(UserInputError) as caught:
        cache_for(OTHER, cache)
    assert f"cannot write the Hugging Face cache {cache} (owner" in str(caught.value)
    assert "mode 755" in str(caught.value) and "HF_HOME" in (caught.value.hint or "")


def test_a_non_root_launcher_cannot_make_a_run_directory_for_another_user(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(container_user.os, "geteuid", lambda: 1000)
    with pytest.raises(UserInputError, match="would belong to you"):
        check_run_directory(OTHER, tmp_path / "new-run")
    assert not (tmp_path / "new-run").exists()
    check_run_directory(ContainerUser(1000, 1000), tmp_path / "new-run")


def test_a_root_launcher_hands_the_whole_run_directory_over(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("handing over needs root")
    run = tmp_path / "run"
    (run / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (run / ".aligntune-run").write_text("")
    (run / "checkpoints" / "checkpoint-1" / "w.bin").write_bytes(b"0")
    hand_over(OTHER, run)
    owners = {p.stat().st_uid for p in [run, *run.rglob("*")]}
    assert owners == {12345}


def test_a_cache_that_is_a_file_is_named(tmp_path) -> None:
    (tmp_path / "hf").write_text("not a folder")
    with pytest.raises(UserInputError, match=r"Hugging Face cache .*/hf is a file, not a folder"):
        cache_for(OTHER, tmp_path / "hf")
