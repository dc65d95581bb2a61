"""The one place that starts training: a container through the docker SDK, or a host process.

Unit tests patch `start_container`, `attach_container` and `start_local` and drive the returned
handle themselves. Secret values are read from the environment here, at the last moment, and go
only to the engine.

Training never depends on the launcher staying alive: a container is never removed while it runs
(the next `aligntune run` re-attaches to it), and a local runner gets SIGTERM, so it saves a
checkpoint, when its launcher dies however it dies.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

from aligntune.cli.container import ContainerSpec
from aligntune.cli.engine import docker_client
from aligntune.cli.local_run import ProcessRun, stop_when_parent_dies
from aligntune.core.errors import BackendUnavailableError, UsageError
from aligntune.core.rundir import disk_errors

API_TIMEOUT_S = 60
ENGINE_PATIENCE_S = 600
"""How long a followed container's engine may stay silent (a loaded host) before giving up."""
RUNNING = ("running", "restarting", "paused")


class RunHandle(Protocol):
    """A started run: poll it, stop it gracefully, kill it, clean up."""

    description: str

    def poll(self) -> int | None:
        """The exit code once it has ended, else None."""
        ...

    def stop(self) -> None:
        """Ask it to stop (SIGTERM: the runner saves a checkpoint); returns at once."""
        ...

    def kill(self) -> None:
        """Stop it now (SIGKILL)."""
        ...

    def close(self) -> None:
        """Release what the run held (log stream, container) once it has ended."""
        ...


def _docker() -> Any:
    import docker

    return docker


def _client(timeout: int | None = API_TIMEOUT_S) -> Any:
    return docker_client(timeout)


def container_environment(
    spec: ContainerSpec, env: Mapping[str, str], handoff: Mapping[str, str] | None = None
) -> list[str]:
    """The env list the engine gets: fixed variables, the pass-through ones that are set, then
    what the launcher hands this run's runner (its plan, the lock it holds)."""
    fixed = [f"{key}={value}" for key, value in spec.environment.items()]
    passed = [f"{name}={env[name]}" for name in spec.passthrough_env if name in env]
    return fixed + passed + [f"{key}={value}" for key, value in (handoff or {}).items()]


def run_arguments(
    spec: ContainerSpec, env: Mapping[str, str], handoff: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments for the SDK's `containers.create` (secret values included)."""
    types = _docker().types
    arguments: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.command),
        "name": spec.name,
        "user": spec.user,
        "working_dir": spec.working_dir,
        "environment": container_environment(spec, env, handoff),
        "labels": dict(spec.labels),
        "init": spec.init,
        "shm_size": spec.shm_size,
        "stop_signal": "SIGTERM",
        "mounts": [
            types.Mount(m.target, m.source, type="bind", read_only=m.read_only) for m in spec.mounts
        ],
    }
    if spec.gpus is not None:
        arguments["device_requests"] = [
            types.DeviceRequest(
                count=spec.gpus.count,
                device_ids=list(spec.gpus.device_ids) or None,
                capabilities=[["gpu"]],
            )
        ]
    arguments.update(network_arguments(spec))
    if spec.ulimits:
        arguments["ulimits"] = [
            types.Ulimit(name=name, soft=value, hard=value) for name, value in spec.ulimits.items()
        ]
    return arguments


def network_arguments(spec: ContainerSpec) -> dict[str, Any]:
    """`network_mode` for host/bridge/none, else the named network with this node's aliases."""
    if spec.network is None:
        return {}
    if spec.network in ("host", "bridge", "none"):
        return {"network_mode": spec.network}
    endpoint = _client().api.create_endpoint_config(aliases=list(spec.network_aliases) or None)
    return {"network": spec.network, "networking_config": {spec.network: endpoint}}


def check_network(spec: ContainerSpec) -> None:
    """Refuse, before the run directory is made, a named network the engine does not have
    (host, bridge and none always exist)."""
    if spec.network is None or spec.network in ("host", "bridge", "none"):
        return
    docker = _docker()
    try:
        _client().networks.get(spec.network)
    except docker.errors.NotFound:
        raise UsageError(
            f"--network {spec.network}: the docker engine has no such network",
            hint=f"create it first (docker network create {spec.network}), or leave --network out",
        ) from None
    except docker.errors.DockerException as exc:
        raise BackendUnavailableError(
            f"the docker engine did not answer: {_explain(exc)}"
        ) from None


class ContainerRun:
    """A running container whose log is copied into a file as it is written (from `since`, a
    unix time, when following again a container an earlier launcher started)."""

    def __init__(self, container: Any, log_path: Path, keep: bool, since: int | None = None):
        self.container = container
        self.keep = keep
        self.description = f"container {container.name} ({container.short_id})"
        self._unanswered_since: float | None = None
        with disk_errors(log_path):
            log = log_path.open("ab")
        self._log_thread = threading.Thread(target=self._copy_log, args=(log, since), daemon=True)
        self._log_thread.start()

    def _copy_log(self, log: Any, since: int | None) -> None:
        # A client without a read timeout: a quiet training step must not end the stream. An
        # engine that stops answering ends the copy, not the launcher (events.jsonl still flows).
        with log, suppress(_docker().errors.DockerException, OSError):
            stream = _client(timeout=None).containers.get(self.container.id)
            for chunk in stream.logs(stream=True, follow=True, since=since):
                log.write(chunk)
                log.flush()

    def poll(self) -> int | None:
        """The container's exit code once it has exited. A busy engine that does not answer is
        asked again at the next poll; one silent for ENGINE_PATIENCE_S ends the following."""
        try:
            self.container.reload()
        except (_docker().errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
            self._unanswered_since = self._unanswered_since or time.monotonic()
            if time.monotonic() - self._unanswered_since < ENGINE_PATIENCE_S:
                return None
            raise BackendUnavailableError(
                f"the docker engine stopped answering ({_explain(exc)}); {self.description} "
                "may still be training",
                hint="run the same command again to follow it",
            ) from None
        self._unanswered_since = None
        state = self.container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            return int(state.get("ExitCode", 1))
        return None

    def stop(self) -> None:
        """Send SIGTERM (tini forwards it to the runner)."""
        self._signal("SIGTERM")

    def kill(self) -> None:
        """Send SIGKILL."""
        self._signal("SIGKILL")

    def _signal(self, name: str) -> None:
        try:
            self.container.kill(signal=name)
        except _docker().errors.APIError:
            pass  # it exited in the meantime

    def close(self) -> None:
        """Once it has exited: finish the log copy and remove the container (unless asked to keep
        it). A container still running (the launcher is leaving early) is left to train."""
        self._unanswered_since = None
        try:
            if self.poll() is None:
                return
        except BackendUnavailableError:
            return
        self._log_thread.join(timeout=10)
        if not self.keep:
            try:
                self.container.remove(force=True)
            except _docker().errors.APIError:
                pass


def _busy(name: str) -> UsageError:
    return UsageError(
        f"container {name} is already training this run directory",
        hint=f"wait for it, or stop it: docker stop {name}",
    )


def _clear_name(client: Any, name: str) -> None:
    """Remove an ended container of the same run; refuse while one is still running."""
    errors = _docker().errors
    try:
        old = client.containers.get(name)
    except errors.NotFound:
        return
    if old.status in RUNNING:
        raise _busy(name)
    old.remove(force=True)


def attach_container(
    name: str, log_path: Path, *, keep: bool = False, restart: bool = False
) -> RunHandle | None:
    """The container `name` if it is still running (its launcher died), to follow it again;
    with `restart`, refused: it would follow the run it was asked to discard."""
    docker = _docker()
    try:
        container = _client().containers.get(name)
    except docker.errors.NotFound:
        return None
    except docker.errors.DockerException as exc:
        raise BackendUnavailableError(
            f"the docker engine did not answer: {_explain(exc)}"
        ) from None
    if container.status not in RUNNING:
        return None
    if restart:
        raise _busy(name)
    # Copy the log from where the earlier launcher's copy stopped (a line or two may repeat).
    since = int(log_path.stat().st_mtime) if log_path.is_file() else None
    return ContainerRun(container, log_path, keep, since)


def start_container(
    spec: ContainerSpec,
    log_path: Path,
    *,
    keep: bool = False,
    handoff: Mapping[str, str] | None = None,
) -> RunHandle:
    """Create and start the container for `spec`, copying its log into `log_path`; `handoff`:
    variables for the runner (the plan, the lock the launcher holds for it)."""
    docker = _docker()
    client = _client()
    _clear_name(client, spec.name)
    try:
        container = client.containers.create(**run_arguments(spec, os.environ, handoff))
    except docker.errors.ImageNotFound:
        raise BackendUnavailableError(f"image {spec.image} is not in the docker engine") from None
    except docker.errors.APIError as exc:
        raise BackendUnavailableError(f"docker refused the container: {_explain(exc)}") from None
    try:
        container.start()
    except docker.errors.APIError as exc:
        container.remove(force=True)
        raise BackendUnavailableError(f"docker could not start the run: {_explain(exc)}") from None
    return ContainerRun(container, log_path, keep)


def _explain(exc: Any) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def start_local(
    argv: list[str], log_path: Path, env: Mapping[str, str], pass_fds: tuple[int, ...] = ()
) -> RunHandle:
    """Start the runner as a host process with its output in `log_path`; `pass_fds`: descriptors
    it inherits (the run directory's lock)."""
    with disk_errors(log_path):
        log = log_path.open("ab")
    # A new session: the terminal's Ctrl-C reaches only the launcher, which decides what to send.
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
        pass_fds=pass_fds,
        preexec_fn=stop_when_parent_dies(os.getpid()),
    )
    return ProcessRun(process, log)
