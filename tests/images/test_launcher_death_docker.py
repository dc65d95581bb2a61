"""The trl cpu image for real: the container outlives whatever happens to `aligntune run`.

A launcher killed with SIGKILL leaves its container training, and the same command follows it to
the end; a launcher whose stdout closes (`| head -1`) keeps following and the run finishes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from image_helpers import tiny_sft_copy

pytestmark = [pytest.mark.docker, pytest.mark.training]

ALIGNTUNE = [sys.executable, "-m", "aligntune.cli.main"]


def env(tmp_path: Path) -> dict[str, str]:
    """The launcher's environment: its own HF cache, no debug tracebacks."""
    clean = {k: v for k, v in os.environ.items() if k not in ("ALIGNTUNE_DEBUG", "HF_TOKEN")}
    return {**clean, "HF_HOME": str(tmp_path / "hf")}


def container_state(name_part: str) -> list[str]:
    """`name status` of every container whose name holds `name_part`."""
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"name={name_part}",
            "--format",
            "{{.Names}} {{.State}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split("\n")[:-1]


def test_a_killed_launchers_container_trains_on_and_is_followed_again(
    trl_cpu_image: str, tmp_path: Path
) -> None:
    recipe = tiny_sft_copy(tmp_path, "long.yaml", max_steps=80, save_steps=40, logging_steps=1)
    run_dir = tmp_path / "run"
    command = [*ALIGNTUNE, "run", str(recipe), "-q", "--output", str(run_dir)]
    first = subprocess.Popen(command, env=env(tmp_path), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    events = run_dir / "events.jsonl"
    while not (events.is_file() and '"event": "log"' in events.read_text()):
        assert time.monotonic() < deadline and first.poll() is None, "no step was logged"
        time.sleep(0.3)
    name = json.loads((run_dir / ".aligntune-run").read_text())["container"]
    first.kill()
    first.communicate(timeout=30)
    assert container_state(name) == [f"{name} running"]  # not removed, not stopped

    again = subprocess.run(command, env=env(tmp_path), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"following container {name}" in again.stdout
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    starts = [line for line in events.read_text().splitlines() if '"event": "start"' in line]
    assert len(starts) == 1  # one run, followed twice: never started again
    assert container_state(name) == []  # removed once it had exited


def test_a_closed_stdout_does_not_stop_the_run(trl_cpu_image: str, tmp_path: Path) -> None:
    recipe = tiny_sft_copy(tmp_path, "piped.yaml", max_steps=20, save_steps=10, logging_steps=1)
    run_dir = tmp_path / "run"
    command = " ".join([*ALIGNTUNE, "run", str(recipe), "-q", "--output", str(run_dir)])
    piped = subprocess.run(
        ["bash", "-c", f"{command} | head -1; exit ${{PIPESTATUS[0]}}"],
        env=env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert piped.stdout.count("\n") == 1 and "Traceback" not in piped.stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["step"] == 20
    assert (run_dir / "final").is_dir()
    name = json.loads((run_dir / ".aligntune-run").read_text())["container"]
    assert container_state(name) == []  # removed once it had exited
