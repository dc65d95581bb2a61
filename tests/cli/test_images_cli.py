"""`--version` names the images a docker run uses, `--pull` takes only its three values, and a
failed pull is one error naming the registry with the three ways out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aligntune.cli.pull import PullProgress, pull_failed
from aligntune.core.backends import BACKENDS
from aligntune.core.errors import ExitCode, error_lines
from aligntune.core.images import MIRROR_ENV
from aligntune.core.version import VERSION

ALIGNTUNE = [sys.executable, "-m", "aligntune.cli.main"]


def aligntune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ALIGNTUNE, *args], capture_output=True, text=True, timeout=60)


def test_version_lists_each_image_a_docker_run_uses() -> None:
    result = aligntune("--version")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"aligntune {VERSION}"
    expected = [
        f"{f'{b.image_name} {device}:':22} {b.image_tag(device)} (local build)"
        for b in BACKENDS
        for device in b.devices
    ]
    assert lines[1:] == expected  # a development checkout records no released image


def test_pull_takes_only_its_three_values(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = aligntune("plan", str(tmp_path / "missing.yaml"), "--pull", "sometimes")
    assert result.returncode == ExitCode.USAGE
    assert "'sometimes'; use missing, never, always" in result.stderr


def test_a_failed_pull_names_the_registry_and_the_ways_out() -> None:
    reason = 'Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection refused\nmore'
    error = pull_failed(
        "127.0.0.1:9/aligntune/trl-runner@sha256:00", "127.0.0.1:9", reason, "BUILD"
    )
    assert error.exit_code == ExitCode.UNAVAILABLE
    lines = error_lines(error)
    assert lines == [
        "error: cannot pull 127.0.0.1:9/aligntune/trl-runner@sha256:00 from the registry "
        '127.0.0.1:9: Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection '
        "refused",
        f"hint: docker login 127.0.0.1:9 if it needs a login; or set {MIRROR_ENV} to a mirror "
        "that holds this digest; or build the image locally: BUILD",
    ]


def test_pull_progress_counts_the_layers_being_downloaded(capsys) -> None:  # type: ignore[no-untyped-def]
    progress = PullProgress("REF", redraw=False)
    messages = [
        {"status": "Pulling from aligntune/trl-runner", "id": "sha256:00"},
        {"status": "Already exists", "id": "a"},
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 1e6, "total": 4e6}},
        {"status": "Downloading", "id": "c", "progressDetail": {"current": 2e6, "total": 6e6}},
        {"status": "Download complete", "id": "b"},
        {"status": "Pull complete", "id": "a"},
    ]
    for message in messages:
        progress.update(message)
    progress.show()
    assert capsys.readouterr().out == "pulling REF: 6.0 / 10.0 MB\n"


def test_a_source_that_is_no_checkout_is_refused_not_replaced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Run from inside a real checkout: the build must not fall back to it and retag the shared
    # image with that checkout's code.
    env = {**os.environ, "ALIGNTUNE_SOURCE": str(tmp_path / "nowhere")}
    result = subprocess.run(
        [*ALIGNTUNE, "images", "build", "trl-runner", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.splitlines()[0] == (
        f"error: ALIGNTUNE_SOURCE={tmp_path / 'nowhere'} is not a source checkout of aligntune "
        "(no images/ and packages/ in it)"
    )
    assert "building" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["images", "build", "nope", "--device", "cpu"], "aligntune images build"),
        (["launch", "slurm", "recipes/tiny/sft.yaml", "--nodes", "0"], "aligntune launch slurm"),
    ],
)
def test_a_usage_error_names_the_help_of_the_command_given(args, command) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [*ALIGNTUNE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.splitlines()[-1] == f"hint: {command} --help lists the options"


@pytest.mark.parametrize(
    "command",
    [
        ["images", "build", "trl-runner", "--device", "cpu"],
        ["images", "publish", "trl-runner", "--registry", "localhost:5000"],
    ],
)
def test_no_docker_client_on_path_is_one_error(tmp_path, command) -> None:  # type: ignore[no-untyped-def]
    """A host that trains through the engine's API may lack the `docker` command: building or
    publishing then says so, exit 3, instead of a FileNotFoundError traceback."""
    result = subprocess.run(
        [*ALIGNTUNE, *command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": str(tmp_path)},
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == ExitCode.UNAVAILABLE
    assert result.stderr.splitlines() == [
        "error: the docker command-line client is not on PATH; images are built and pushed with it",
        "hint: install the docker CLI (sudo bash scripts/install-docker.sh), or add it to PATH",
    ]
