"""`aligntune export RUN_DIR`: a finished run's model in a new folder, written by its runner.

The runner (in the run's backend image, or installed here with --runtime local) writes into a
hidden staging folder beside the target; the launcher renames it once the runner has written and
checked everything (export.json), and removes it on any failure: the target appears whole or
not at all, and the run directory is mounted read-only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

import typer

from aligntune.cli import launch
from aligntune.cli.container import CUDA_ULIMITS, PASSTHROUGH_ENV, ContainerSpec, GpuRequest
from aligntune.cli.container_user import ContainerUser, cache_for
from aligntune.cli.local_run import stop_when_parent_dies
from aligntune.cli.mounts import (
    CONTAINER_ROOT,
    HF_CACHE_MOUNT,
    RUN_MOUNT,
    Mount,
    hf_cache_path,
    mount_problem,
    refuse_writable_input,
)
from aligntune.core.backends import get_backend
from aligntune.core.errors import (
    BackendUnavailableError,
    ExitCode,
    RunnerNotInstalledError,
    UsageError,
    UserInputError,
)
from aligntune.core.exports import (
    EXPORT_RECORD,
    ExportFormat,
    ExportSource,
    check_base,
    check_export_output,
    check_format,
    read_source,
)
from aligntune.core.rundir import disk_errors
from aligntune.core.version import VERSION

EXPORT_MOUNT = f"{CONTAINER_ROOT}/export"
BASE_MOUNT = f"{CONTAINER_ROOT}/base"
POLL_S = 0.5


@dataclass
class ExportOptions:
    """What `aligntune export` was asked to do."""

    run_dir: Path
    fmt: str | None = None
    output: Path | None = None
    runtime: Literal["docker", "local"] = "docker"
    user: str | None = None


def runner_arguments(source: ExportSource, fmt: ExportFormat) -> list[str]:
    """What every runner's export is told, whichever runtime: the format and the names the
    export records (the base and the run as the user knows them)."""
    return ["--format", fmt, "--base-name", source.base, "--run-name", str(source.run_dir)]


def _read_only(path: Path, what: str, target: str) -> Mount:
    why = mount_problem(path)
    if why:
        raise UserInputError(f"the {what} {path} {why}; it would be mounted into the container")
    return Mount(str(path.resolve()), target)


def read_only_mounts(source: ExportSource) -> list[Mount]:
    """The run directory, and the local base model an adapter is merged into."""
    mounts = [_read_only(source.run_dir, "run directory", RUN_MOUNT)]
    if source.base_local is not None and source.adapter:
        mounts.append(_read_only(source.base_local, "base model", BASE_MOUNT))
    return mounts


def cache_mount(source: ExportSource, cache: Path) -> Mount:
    """The Hugging Face cache, read-write; refused where it holds what the export only reads."""
    mount = Mount(str(cache.resolve()), HF_CACHE_MOUNT, read_only=False)
    refuse_writable_input("Hugging Face cache", mount, read_only_mounts(source))
    return mount


def export_spec(
    source: ExportSource, fmt: ExportFormat, staging: Path, user: ContainerUser, cache: Path
) -> ContainerSpec:
    """The export's container: the run's image; the run directory and a local base read-only,
    the staging folder and the Hugging Face cache read-write, nothing else."""
    image = export_image(source)
    mounts = read_only_mounts(source)
    command = ["export", RUN_MOUNT, "--output", EXPORT_MOUNT, *runner_arguments(source, fmt)]
    if any(mount.target == BASE_MOUNT for mount in mounts):
        command += ["--base", BASE_MOUNT]
    mounts += [Mount(str(staging), EXPORT_MOUNT, read_only=False), cache_mount(source, cache)]
    digest = hashlib.sha256(str(source.run_dir).encode()).hexdigest()[:10]
    cuda = source.device == "cuda"
    return ContainerSpec(
        image=image,
        name=f"aligntune-export-{digest}",
        command=tuple(command),
        mounts=tuple(mounts),
        environment={"HF_HOME": HF_CACHE_MOUNT},
        passthrough_env=PASSTHROUGH_ENV,
        user=str(user),
        labels={
            "org.aligntune.export": str(source.run_dir),
            "org.aligntune.backend": source.backend,
            "org.aligntune.version": VERSION,
        },
        working_dir=EXPORT_MOUNT,
        gpus=GpuRequest(count=-1) if cuda else None,
        ulimits=dict(CUDA_ULIMITS) if cuda else None,
    )


def export_image(source: ExportSource) -> str:
    """The image the run trained in (plan.json); for a local run, its backend's for its device."""
    return source.image or get_backend(source.backend).image_tag(source.device)


def check_image(source: ExportSource) -> None:
    """Refuse, before anything is written, an engine that does not answer or a missing image;
    the released image a run used (pinned by digest) is pulled again, as `run` pulls it."""
    from aligntune.cli.engine import probe_docker

    image = export_image(source)
    state = probe_docker()
    if not state.reachable:
        raise BackendUnavailableError(
            f"the docker engine is not reachable ({state.error})",
            hint="start it (see `aligntune diagnose`), or export with --runtime local",
        )
    if image in state.images:
        return
    build = get_backend(source.backend).build_command(source.device)
    if "@sha256:" not in image:
        raise BackendUnavailableError(f"image {image} is not built", hint=f"build it: {build}")
    from aligntune.cli.pull import pull_image

    pull_image(image, image.split("/", 1)[0], build, quiet=False)


def run_in_docker(spec: ContainerSpec) -> int:
    """Start the export's container, show its output as it comes, return its exit code."""
    with tempfile.TemporaryDirectory(prefix="aligntune-export-log-") as folder:
        log = Path(folder) / "container.log"
        handle = launch.start_container(spec, log)
        shown = 0
        try:
            while True:
                code = handle.poll()
                shown = _show_new(log, shown)
                if code is not None:
                    handle.close()
                    _show_new(log, shown)
                    return code
                time.sleep(POLL_S)
        except BaseException:
            handle.kill()
            handle.close()
            raise


def _show_new(log: Path, shown: int) -> int:
    if not log.is_file():
        return shown
    with log.open("rb") as handle:
        handle.seek(shown)
        chunk = handle.read()
    if chunk:
        typer.echo(chunk.decode(errors="replace"), err=True, nl=False)
    return shown + len(chunk)


def check_runner(source: ExportSource) -> None:
    """Refuse --runtime local where the run's runner is not installed."""
    backend = get_backend(source.backend)
    if not backend.runner_installed():
        raise RunnerNotInstalledError(
            f"the {backend.name} runner that trained {source.run_dir} is not installed here; "
            f"{backend.install_command}",
            hint="or export in the backend's image: --runtime docker",
        )


RUNNER_STOP_S = 10.0
"""How long a stopped export's runner may take to end before it is killed."""


def run_here(source: ExportSource, fmt: ExportFormat, staging: Path) -> int:
    """The runner installed in this Python environment, as a child process that ends with the
    launcher, however the launcher ends (else it would write on into a folder nobody keeps)."""
    backend = get_backend(source.backend)
    argv = [sys.executable, "-m", backend.runner_module, "export", str(source.run_dir)]
    argv += ["--output", str(staging), *runner_arguments(source, fmt)]
    # PYTHONSAFEPATH: a stray `copy.py` in the current folder must not shadow the stdlib.
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    process = subprocess.Popen(argv, env=env, preexec_fn=stop_when_parent_dies(os.getpid()))
    try:
        return process.wait()
    except BaseException:
        process.terminate()
        try:
            process.wait(timeout=RUNNER_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise


@contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM (`kill`, a closing session) stops an export as Ctrl-C does: the runner is stopped
    and the hidden folder removed, exit 143. Python's default would end the launcher at once and
    leave both behind."""

    def stop(signum: int, frame: FrameType | None) -> None:
        typer.echo("error: stopped by SIGTERM; the export wrote nothing", err=True)
        raise SystemExit(ExitCode.INTERRUPTED_SIGTERM)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def make_staging(target: Path) -> Path:
    """A new hidden folder beside `target`, on its file system, so the rename is atomic."""
    with disk_errors(target):
        staging = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        )
        umask = os.umask(0o022)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would make the export private
    return staging


def export_run(options: ExportOptions) -> int:
    """Check, write into a staging folder through the runner, rename; the exit code."""
    source = read_source(options.run_dir)
    fmt = check_format(source, options.fmt)
    check_base(source)
    target = check_export_output(options.output or source.default_output(fmt), source.run_dir)
    docker = options.runtime == "docker"
    if docker:
        user = ContainerUser.parse(options.user)
        check_image(source)
        cache = cache_for(user, hf_cache_path())
        cache_mount(source, cache)  # refused before the staging folder is made
    elif options.user is not None:
        raise UsageError("--user applies to the docker runtime; the runner runs as you")
    else:
        check_runner(source)
    staging = make_staging(target)
    try:
        if docker:
            spec = export_spec(source, fmt, staging, user, cache)
            typer.echo(f"exporting {source.run_dir} ({fmt}) in {spec.image}", err=True)
            code = run_in_docker(spec)
        else:
            typer.echo(
                f"exporting {source.run_dir} ({fmt}) with the runner installed here", err=True
            )
            code = run_here(source, fmt, staging)
        if code > 128 and code not in (ExitCode.INTERRUPTED_SIGINT, ExitCode.INTERRUPTED_SIGTERM):
            # Killed (SIGKILL: 137): the runner could not say why.
            typer.echo(
                f"error: the export's runner was killed (exit {code}; 137 is often out of "
                "memory); nothing was kept",
                err=True,
            )
        if code == ExitCode.OK and not (staging / EXPORT_RECORD).is_file():
            typer.echo(f"error: the runner wrote no {EXPORT_RECORD}; nothing kept", err=True)
            code = ExitCode.CRASH
        if code == ExitCode.OK:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if code == ExitCode.OK:
        typer.echo(f"exported: {target}")
    return code
