"""`aligntune run --user UID:GID` against the real engine: the run trains as that user and leaves
everything it wrote theirs; a cache that user cannot write stops the run before it starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import ALIGNTUNE, TINY

pytestmark = [pytest.mark.docker, pytest.mark.training]


def run(tmp_path: Path, hf_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HOME": str(hf_home)}
    env.pop("ALIGNTUNE_DEBUG", None)
    return subprocess.run(
        [*ALIGNTUNE, "run", str(TINY / "sft.yaml"), "-q", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip


def test_another_user_trains_and_owns_the_run(trl_cpu_image: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root may start a run for another uid")
    out = tmp_path / "run"
    result = run(tmp_path, tmp_path / "hf", "--user", "12345:12345", "--output", str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (out / "final").is_dir()
    owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in [out, *out.rglob("*")]}
    assert owners == {(12345, 12345)}
    assert (tmp_path / "hf").stat().st_uid == 12345


def test_a_cache_the_user_cannot_write_stops_before_anything_starts(
    trl_cpu_image: str, tmp_path: Path
) -> None:
    cache = tmp_path / "hf"
    cache.mkdir(mode=0o755)
    out = tmp_path / "run"
    result = run(tmp_path, cache, "--user", "12345:12345", "--output", str(out))
    assert result.returncode == 1
    assert f"cannot write the Hugging Face cache {cache}" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
