"""Fixtures of the launcher tests: a described host and the fake launch seam (fake_launch.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fake_launch import IMAGE, Launcher

from aligntune.cli import host
from aligntune.core.plan import HostInfo


@pytest.fixture
def fake_host(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Describe the host: docker reachable, the given images present, the trl runner installed."""

    def set_host(images: tuple[str, ...] = (IMAGE,)) -> None:
        info = HostInfo(
            docker_available=True, images=frozenset(images), runner_packages=frozenset({"trl"})
        )
        monkeypatch.setattr(host, "probe_host", lambda **_: (info, host.DockerState()))

    set_host()
    return set_host


@pytest.fixture
def launcher(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_host: Callable[..., None],
) -> Launcher:
    """The launcher on a host with docker, the trl cpu image and the trl runner (see fake_host)."""
    return Launcher(monkeypatch, capsys)
