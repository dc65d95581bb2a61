"""`aligntune run`: check, plan, write the run directory, start the runner, follow it, report.

Nothing is written and nothing starts until the recipe, its data and the image are known good.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import typer

from aligntune.cli import launch
from aligntune.cli.commands import load_checked
from aligntune.cli.container import (
    STOP_TIMEOUT_S,
    RunPaths,
    build_container_spec,
    parse_gpus,
)
from aligntune.cli.progress import format_duration, make_display, summary_text
from aligntune.cli.stopping import StopOnSignal
from aligntune.cli.topology import Topology
from aligntune.core.backends import get_backend
from aligntune.core.errors import BackendUnavailableError, ExitCode, UsageError, signal_exit_code
from aligntune.core.outputdir import check_output
from aligntune.core.plan import Plan
from aligntune.core.recipe import Recipe
from aligntune.core.rundir import RunDirectory
from aligntune.core.selection import select_backend

Mode = Literal["auto", "resume", "restart"]
POLL_S = 0.5
INTERRUPTED = (ExitCode.INTERRUPTED_SIGINT, ExitCode.INTERRUPTED_SIGTERM)


@dataclass
class RunOptions:
    """What `aligntune run` was asked to do."""

    recipe: Path
    backend: str | None = None
    runtime: Literal["docker", "local"] = "docker"
    output: Path | None = None
    gpus: str | None = None
    mode: Mode = "auto"
    quiet: bool = False
    user: str | None = None
    keep_container: bool = False
    topology: Topology = field(default_factory=Topology)
    """Nodes, this node's rank and the rendezvous (from flags, else the environment)."""
    network: str | None = None
    """Docker network for the container (host, or a named network for several nodes)."""


def saved_backend(run_dir: RunDirectory, options: RunOptions) -> str | None:
    """The backend an earlier attempt chose, which a resumed run keeps (never switched silently)."""
    saved = run_dir.read_json(run_dir.plan) if options.mode != "restart" else None
    if not saved:
        if options.mode == "resume":
            raise UsageError(f"--resume: {run_dir.root} holds no earlier run")
        return options.backend
    backend = saved.get("backend")
    if options.backend not in (None, "auto", backend):
        raise UsageError(
            f"{run_dir.root} was trained with backend {backend}; --backend {options.backend} "
            "would mix two runs",
            hint="use --restart to start this directory over, or another --output",
        )
    return backend


def make_plan(recipe: Recipe, run_dir: RunDirectory, options: RunOptions) -> Plan:
    """Probe the host and select the backend; refuse a missing image before anything is written."""
    from aligntune.cli.host import probe_host

    backend = saved_backend(run_dir, options)
    host, _ = probe_host(docker=options.runtime == "docker", nnodes=options.topology.nnodes)
    plan = select_backend(recipe, host, backend=backend, runtime=options.runtime)
    if backend and backend != options.backend:
        plan.reasons.insert(0, f"resuming: {run_dir.plan.name} chose backend {backend}")
    if options.topology.multi_node:
        plan.reasons.append(f"topology: {options.topology.describe()}")
    if options.runtime == "docker" and not plan.image_available:
        raise BackendUnavailableError(
            f"image {plan.image} is not built",
            hint=f"build it: {get_backend(plan.backend).build_command(plan.device)}",
        )
    plan.reasons.append(
        f"runtime {options.runtime}: "
        + ("the backend's image" if options.runtime == "docker" else "the runner installed here")
    )
    return plan


def hf_cache_dir() -> Path:
    """The host's Hugging Face cache (HF_HOME), created so the container can write into it."""
    path = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the Hugging Face cache {path}: {exc.strerror}",
            hint="set HF_HOME to a folder you can write",
        ) from None
    return path


def default_user() -> str:
    """The caller's uid:gid, so files in the run directory belong to them."""
    return f"{os.getuid()}:{os.getgid()}"


def resume_command(options: RunOptions, run_dir: RunDirectory) -> str:
    """The command that continues this run."""
    parts = ["aligntune", "run", str(options.recipe), "--output", str(run_dir.root)]
    if options.runtime == "local":
        parts += ["--runtime", "local"]
    return shlex.join(parts)


def prepare(
    recipe: Recipe, plan: Plan, run_dir: RunDirectory, options: RunOptions
) -> Callable[[], launch.RunHandle]:
    """Write plan.json; return what starts the run (the runner writes recipe.resolved.yaml)."""
    if options.runtime == "docker":
        paths = RunPaths(options.recipe.resolve(), run_dir.root, hf_cache_dir())
        gpus = parse_gpus(options.gpus)
        user = options.user or default_user()
        spec = build_container_spec(
            plan,
            recipe,
            paths,
            user=user,
            gpus=gpus,
            mode=options.mode,
            topology=options.topology,
            network=options.network,
        )
        launch_info: dict[str, Any] = {"runtime": "docker", "container": spec.describe()}

        def start() -> launch.RunHandle:
            return launch.start_container(spec, run_dir.log, keep=options.keep_container)

    else:
        if options.gpus is not None:
            raise UsageError("--gpus applies to the docker runtime; set CUDA_VISIBLE_DEVICES")
        if options.network is not None:
            raise UsageError("--network applies to the docker runtime")
        argv = local_command(plan, options, run_dir)
        topology_env = options.topology.environment()
        launch_info = {"runtime": "local", "argv": argv, "environment": topology_env}

        def start() -> launch.RunHandle:
            return launch.start_local(argv, run_dir.log, {**os.environ, **topology_env})

    launch_info["resume_command"] = resume_command(options, run_dir)
    # Only now, with every check passed, does the run directory come into being.
    run_dir.root.mkdir(parents=True, exist_ok=True)
    run_dir.write_json(run_dir.plan, {**plan.model_dump(mode="json"), "launch": launch_info})
    return start


def local_command(plan: Plan, options: RunOptions, run_dir: RunDirectory) -> list[str]:
    """The runner's command line on this host (this Python, where the runner is installed)."""
    runner = get_backend(plan.backend).runner_module
    argv = [sys.executable, "-m", runner, "run", str(options.recipe)]
    argv += ["--output", str(run_dir.root)]
    if options.mode != "auto":
        argv.append(f"--{options.mode}")
    return argv


def follow(
    handle: launch.RunHandle, run_dir: RunDirectory, quiet: bool, stopper: StopOnSignal
) -> int:
    """Show progress until the run ends; return the runner's exit code."""
    display = make_display(quiet)
    # Events of earlier attempts (a resumed run) were shown then; follow only the new ones.
    offset = run_dir.events.stat().st_size if run_dir.events.is_file() else 0
    try:
        while True:
            code = handle.poll()
            events, offset = run_dir.read_events(offset)
            for event in events:
                display.handle(event)
            if code is not None:
                return code
            stopper.check_deadline()
            time.sleep(POLL_S)
    finally:
        display.close()
        handle.close()


def report(
    code: int, signum: int | None, run_dir: RunDirectory, options: RunOptions, took: float
) -> int:
    """Print the outcome; return the launcher's exit code."""
    status = run_dir.read_status() or {}
    events = reversed(list(run_dir.iter_events()))
    end: dict[str, Any] = next((e for e in events if e.get("event") == "end"), {})
    if code == ExitCode.OK:
        metrics = status.get("metrics") or end.get("metrics") or {}
        steps = metrics.get("global_step", status.get("step", "?"))
        typer.echo(f"finished {options.recipe}: {steps} steps in {format_duration(took)}")
        typer.echo(f"metrics: {summary_text(metrics)}")
        if run_dir.final.is_dir():
            typer.echo(f"model: {run_dir.final}")
        typer.echo(f"run directory: {run_dir.root}")
        return ExitCode.OK
    if code in INTERRUPTED or signum is not None:
        checkpoint = end.get("checkpoint") or status.get("checkpoint")
        where = f"; checkpoint {checkpoint}" if checkpoint else "; no checkpoint was saved"
        typer.echo(f"interrupted at step {status.get('step', '?')}{where}", err=True)
        typer.echo(f"resume with: {resume_command(options, run_dir)}", err=True)
        if signum is not None:
            return signal_exit_code(signum)
        return code
    typer.echo(f"the run failed (exit {code}); the end of {run_dir.log}:", err=True)
    for line in log_tail(run_dir.log):
        typer.echo(f"  {line}", err=True)
    return code


def log_tail(path: Path, lines: int = 25) -> list[str]:
    """The last lines of a log file (empty when there is none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return text.rstrip().splitlines()[-lines:]


def run_recipe(options: RunOptions) -> int:
    """Check, plan, prepare, start and follow one run; the return value is the exit code."""
    recipe = load_checked(options.recipe)
    parse_gpus(options.gpus)
    check_output(recipe, options.output)
    run_dir = RunDirectory(recipe.run_dir(options.output))
    plan = make_plan(recipe, run_dir, options)
    start = prepare(recipe, plan, run_dir, options)
    if not options.quiet:
        typer.echo("\n".join(plan.summary_lines()))
    typer.echo(f"run directory: {run_dir.root}")
    started = time.monotonic()
    with StopOnSignal(STOP_TIMEOUT_S) as stopper:
        handle = start()
        typer.echo(f"started {handle.description}; log: {run_dir.log}")
        stopper.attach(handle)
        code = follow(handle, run_dir, options.quiet, stopper)
    return report(code, stopper.signum, run_dir, options, time.monotonic() - started)
