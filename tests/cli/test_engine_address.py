"""The engine `plan` and `run` ask about is the one the run's container starts on: DOCKER_HOST
as the docker SDK reads it (empty is unset), else the current docker context; an address the
plain socket probe cannot use goes through the SDK, whose error says what is wrong."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from aligntune.cli.engine import docker_client, needs_sdk, probe_docker
from aligntune.core.errors import ExitCode


def _context(config: Path, name: str, host: str) -> None:
    """A docker CLI context `name` (as `docker context create` writes it) whose engine is `host`."""
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    endpoints = {"docker": {"Host": host, "SkipTLSVerify": False}}
    (meta / "meta.json").write_text(
        json.dumps({"Name": name, "Metadata": {}, "Endpoints": endpoints})
    )


@pytest.fixture
def docker_env(monkeypatch, tmp_path) -> Path:  # type: ignore[no-untyped-def]
    """No docker variables set; a docker CLI config folder of the test's own."""
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


@pytest.mark.parametrize("host", ["", "unix://", "unix:///var/run/docker.sock/"])
def test_spellings_of_the_default_engine_reach_it(docker_env, monkeypatch, host) -> None:  # type: ignore[no-untyped-def]
    """What the SDK (which starts the container) takes for the default socket, the probe too."""
    unset = probe_docker()
    monkeypatch.setenv("DOCKER_HOST", host)
    same = probe_docker()
    assert (same.reachable, same.version) == (unset.reachable, unset.version)
    assert not needs_sdk()


def test_a_tcp_host_without_port_is_explained(docker_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1")
    state = probe_docker()
    assert not state.reachable
    assert state.error == "Invalid bind address format: port is required: tcp://127.0.0.1"


def test_an_unknown_docker_context_is_refused(docker_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DOCKER_CONTEXT", "nowhere")
    state = probe_docker()
    assert not state.reachable
    assert state.error == "the docker context nowhere does not exist (see docker context ls)"


def test_the_current_context_is_the_engine_asked(docker_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # `docker context use elsewhere` wrote this; the SDK starts the container there, so the
    # probe must not answer for the default socket instead.
    _context(docker_env, "elsewhere", f"unix://{tmp_path}/no-engine.sock")
    (docker_env / "config.json").write_text(json.dumps({"currentContext": "elsewhere"}))
    assert needs_sdk()
    state = probe_docker()
    assert not state.reachable
    assert state.error


def test_the_client_starts_containers_on_the_current_context(docker_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The default socket answers here (the test host runs an engine): a client that fell back
    # to it, as docker.from_env does, would start the run's container on the wrong engine.
    _context(docker_env, "elsewhere", f"unix://{tmp_path}/no-engine.sock")
    (docker_env / "config.json").write_text(json.dumps({"currentContext": "elsewhere"}))
    with pytest.raises(docker.errors.DockerException, match="No such file or directory"):
        docker_client()


@pytest.mark.parametrize(
    ("host", "sdk"),
    [
        ("unix:///run/docker.sock", False),
        ("tcp://10.0.0.5:2375", False),
        ("tcp://10.0.0.5", True),
        ("ssh://me@builder", True),
        (" unix:///run/docker.sock", True),
    ],
)
def test_only_plain_sockets_skip_the_sdk(docker_env, monkeypatch, host, sdk) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DOCKER_HOST", host)
    assert needs_sdk() is sdk


def test_images_list_refuses_an_unknown_context_too(docker_env) -> None:  # type: ignore[no-untyped-def]
    """Every command reaches the engine through one client: none falls back to the default."""
    result = subprocess.run(
        [sys.executable, "-m", "aligntune.cli.main", "images", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DOCKER_CONTEXT": "nowhere"},
    )
    assert result.returncode == ExitCode.UNAVAILABLE
    assert result.stderr.splitlines()[0] == (
        "error: cannot list images: the docker context nowhere does not exist (see docker "
        "context ls)"
    )
