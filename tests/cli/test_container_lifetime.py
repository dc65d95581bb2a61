"""A container outlives its launcher: never removed while it runs, followed again by the next
launch, never followed by --restart. The docker SDK's client is replaced by a fake one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest

from aligntune.cli import launch
from aligntune.core.errors import BackendUnavailableError, UsageError


class FakeContainer:
    """Just enough of the SDK's Container: status, exit code, logs, remove."""

    def __init__(self, status: str, exit_code: int = 0) -> None:
        self.name = "aligntune-tiny-sft-0123456789"
        self.id = self.short_id = "c0ffee"
        self.status = status
        self.attrs = {"State": {"Status": status, "ExitCode": exit_code}}
        self.removed = False
        self.log_since: list[Any] = []
        self.silent = False
        """Whether the engine does not answer (a loaded host: requests' ReadTimeout)."""

    def reload(self) -> None:
        if self.silent:
            raise OSError("Read timed out. (read timeout=60)")
        self.attrs["State"]["Status"] = self.status

    def logs(self, stream: bool, follow: bool, since: Any = None) -> list[bytes]:
        self.log_since.append(since)
        return [b"a line\n"]

    def remove(self, force: bool = False) -> None:
        self.removed = True


class FakeClient:
    def __init__(self, container: FakeContainer | None) -> None:
        self.found = container
        self.containers = self

    def get(self, name: str) -> FakeContainer:
        if self.found is None:
            raise docker.errors.NotFound("no such container")
        return self.found


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient(None)
    monkeypatch.setattr(launch, "_client", lambda timeout=None: client)
    return client


def test_closing_never_removes_a_running_container(tmp_path: Path, engine: FakeClient) -> None:
    engine.found = container = FakeContainer("running")
    handle = launch.ContainerRun(container, tmp_path / "container.log", keep=False)
    handle.close()  # the launcher leaves early (an error, a closed terminal): training goes on
    assert not container.removed
    container.status = "exited"
    handle.close()
    assert container.removed and (tmp_path / "container.log").read_bytes() == b"a line\n"


def test_a_running_container_is_followed_again_from_where_the_log_stopped(
    tmp_path: Path, engine: FakeClient
) -> None:
    log = tmp_path / "container.log"
    log.write_text("what the first launcher copied\n")
    copied_until = int(log.stat().st_mtime)
    engine.found = container = FakeContainer("running")
    handle = launch.attach_container(container.name, log)
    assert handle is not None and handle.poll() is None
    container.status = "exited"
    assert handle.poll() == 0
    handle.close()
    assert container.log_since == [copied_until]
    assert log.read_text() == "what the first launcher copied\na line\n"


def test_nothing_to_follow_when_no_container_runs(tmp_path: Path, engine: FakeClient) -> None:
    assert launch.attach_container("x", tmp_path / "container.log") is None
    engine.found = FakeContainer("exited")
    assert launch.attach_container("x", tmp_path / "container.log") is None


def test_restart_refuses_a_container_that_still_trains(tmp_path: Path, engine: FakeClient) -> None:
    engine.found = container = FakeContainer("running")
    with pytest.raises(UsageError, match=f"container {container.name} is already training"):
        launch.attach_container(container.name, tmp_path / "container.log", restart=True)
    assert not container.removed


def test_a_silent_engine_is_asked_again_then_given_up_on(
    tmp_path: Path, engine: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.found = container = FakeContainer("running")
    handle = launch.ContainerRun(container, tmp_path / "container.log", keep=False)
    container.silent = True
    assert handle.poll() is None  # a slow answer is not the end of the run
    container.silent = False
    container.status = "exited"
    assert handle.poll() == 0
    container.silent = True
    monkeypatch.setattr(launch, "ENGINE_PATIENCE_S", 0)
    with pytest.raises(BackendUnavailableError, match="may still be training") as caught:
        handle.poll()
        handle.poll()
    assert caught.value.hint == "run the same command again to follow it"
    handle.close()  # cannot tell whether it still runs: leave it
    assert not container.removed
