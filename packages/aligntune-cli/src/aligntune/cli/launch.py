"""The one place that starts training: a container through the docker SDK, or a host process.

Unit tests patch `start_container` / `start_local` and drive the returned handle themselves.
Secret values are read from the environment here, at the last moment, and go only to the engine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from aligntune.cli.container import ContainerSpec
from aligntune.core.errors import BackendUnavailableError, UsageError, signal_exit_code

API_TIMEOUT_S = 60


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
    return _docker().from_env(timeout=timeout)


def container_environment(spec: ContainerSpec, env: Mapping[str, str]) -> list[str]:
    """The env list the engine gets: fixed variables, then the pass-through ones that are set."""
    fixed = [f"{key}={value}" for key, value in spec.environment.items()]
    passed = [f"{name}={env[name]}" for name in spec.passthrough_env if name in env]
    return fixed + passed


def run_arguments(spec: ContainerSpec, env: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for the SDK's `containers.create` (secret values included)."""
    types = _docker().types
    arguments: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.command),
        "name": spec.name,
        "user": spec.user,
        "working_dir": spec.working_dir,
        "environment": container_environment(spec, env),
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


class ContainerRun:
    """A running container whose log is copied into a file as it is written."""

    def __init__(self, container: Any, log_path: Path, keep: bool) -> None:
        self.container = container
        self.keep = keep
        self.description = f"container {container.name} ({container.short_id})"
        self._log_thread = threading.Thread(target=self._copy_log, args=(log_path,), daemon=True)
        self._log_thread.start()

    def _copy_log(self, log_path: Path) -> None:
        # A client without a read timeout: a quiet training step must not end the stream.
        stream = _client(timeout=None).containers.get(self.container.id)
        with log_path.open("ab") as log:
            for chunk in stream.logs(stream=True, follow=True):
                log.write(chunk)
                log.flush()

    def poll(self) -> int | None:
        """The container's exit code once it has exited."""
        self.container.reload()
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
        """Wait for the log copy to finish, then remove the container unless asked to keep it."""
        self._log_thread.join(timeout=10)
        if not self.keep:
            try:
                self.container.remove(force=True)
            except _docker().errors.APIError:
                pass


def _clear_name(client: Any, name: str) -> None:
    """Remove an ended container of the same run; refuse while one is still running."""
    errors = _docker().errors
    try:
        old = client.containers.get(name)
    except errors.NotFound:
        return
    if old.status in ("running", "restarting", "paused"):
        raise UsageError(
            f"container {name} is already training this run directory",
            hint=f"wait for it, or stop it: docker stop {name}",
        )
    old.remove(force=True)


def start_container(spec: ContainerSpec, log_path: Path, *, keep: bool = False) -> RunHandle:
    """Create and start the container for `spec`, copying its log into `log_path`."""
    docker = _docker()
    client = _client()
    _clear_name(client, spec.name)
    try:
        container = client.containers.create(**run_arguments(spec, os.environ))
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


class ProcessRun:
    """The runner as a host subprocess (--runtime local)."""

    def __init__(self, process: subprocess.Popen[bytes], log: Any) -> None:
        self.process = process
        self._log = log
        self.description = f"process {process.pid}"

    def poll(self) -> int | None:
        """The exit code, as a shell reports it (128 + signal for a killed process)."""
        code = self.process.poll()
        return signal_exit_code(-code) if code is not None and code < 0 else code

    def stop(self) -> None:
        """Send SIGTERM."""
        self._send(signal.SIGTERM)

    def kill(self) -> None:
        """Send SIGKILL."""
        self._send(signal.SIGKILL)

    def _send(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def close(self) -> None:
        """Close the log file."""
        self._log.close()


def start_local(argv: list[str], log_path: Path, env: Mapping[str, str]) -> RunHandle:
    """Start the runner as a host process with its output in `log_path`."""
    log = log_path.open("ab")
    # A new session: the terminal's Ctrl-C reaches only the launcher, which decides what to send.
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env=dict(env), start_new_session=True
    )
    return ProcessRun(process, log)
