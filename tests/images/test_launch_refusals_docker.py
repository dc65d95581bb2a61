"""`aligntune run` against the real engine: what the engine would refuse is refused before the
run directory is made, with one error line and the fix."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TINY

from aligntune.core.errors import ExitCode

pytestmark = [pytest.mark.docker]


def test_a_network_the_engine_lacks_makes_no_run_directory(
    trl_cpu_image: str, tmp_path: Path, aligntune: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    out = tmp_path / "run"
    result = aligntune(
        "run", str(TINY / "sft.yaml"), "-q", "--output", str(out), "--network", "no-such-net"
    )
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.splitlines() == [
        "error: --network no-such-net: the docker engine has no such network",
        "hint: create it first (docker network create no-such-net), or leave --network out",
    ]
    assert not out.exists()
