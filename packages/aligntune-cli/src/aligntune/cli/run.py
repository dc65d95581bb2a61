"""`aligntune run`: check, plan, claim the run directory, start the runner, follow it, report.

Nothing is written and nothing starts until the recipe, its data and the image are known good;
nothing the user wrote is ever written over, and a run the runner refuses changes nothing.
"""

from __future__ import annotations

import json
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
from aligntune.cli.claim import LaunchClaim
from aligntune.cli.commands import check_recipe, host_plan
from aligntune.cli.container import (
    STOP_TIMEOUT_S,
    RunPaths,
    build_container_spec,
    parse_gpus,
)
from aligntune.cli.container_user import (
    ContainerUser,
    cache_for,
    check_run_directory,
    hand_over,
)
from aligntune.cli.mounts import hf_cache_path
from aligntune.cli.outcome import Outcome, report
from aligntune.cli.progress import make_display
from aligntune.cli.pull import pull_image
from aligntune.cli.stopping import StopOnSignal, survive_closed_output
from aligntune.cli.topology import Topology
from aligntune.core import checked_data
from aligntune.core.backends import get_backend
from aligntune.core.errors import BackendUnavailableError, UsageError
from aligntune.core.images import PullPolicy
from aligntune.core.outputdir import check_output
from aligntune.core.plan import Plan
from aligntune.core.recipe import Recipe
from aligntune.core.resume_rules import refuse_a_different_run
from aligntune.core.rundir import PLAN_ENV, RunDirectory
from aligntune.core.runlock import HELD_ON_HOST, LOCK_ENV, holder_record

Mode = Literal["auto", "resume", "restart"]
POLL_S = 0.5


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
    pull: PullPolicy = "missing"
    """When to pull the released image (docker runtime)."""


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
    backend = saved_backend(run_dir, options)
    plan = host_plan(recipe, backend, options.runtime, options.pull, options.topology)
    if backend and backend != options.backend:
        # Kept from the earlier attempt (saved_backend refused any other explicit request): what
        # was asked for now is auto, by flag or by the recipe, or the recipe's backend.
        plan.requested_backend = "auto" if options.backend else recipe.backend
        kept = f"resuming: {run_dir.plan.name} chose backend {backend}"
        plan.reasons[plan.reasons.index(f"backend {backend} was requested")] = kept
    if options.runtime == "docker" and not plan.image_available and not plan.image_pull:
        released = plan.image_source == "release"
        raise BackendUnavailableError(
            f"image {plan.image} is "
            + ("not present and --pull never" if released else "not built"),
            hint=("pull it (--pull missing) or " if released else "")
            + f"build it: {get_backend(plan.backend).build_command(plan.device)}",
        )
    plan.reasons.append(
        f"runtime {options.runtime}: "
        + ("the backend's image" if options.runtime == "docker" else "the runner installed here")
    )
    return plan


def resume_command(options: RunOptions, run_dir: RunDirectory) -> str:
    """The command that continues this run."""
    parts = ["aligntune", "run", str(options.recipe), "--output", str(run_dir.root)]
    if options.runtime == "local":
        parts += ["--runtime", "local"]
    return shlex.join(parts)


@dataclass
class Launch:
    """How this run starts: the plan.json its runner is handed, and the runtime's ways to start a
    runner or to follow the one still training the run directory."""

    plan_json: dict[str, Any]
    start: Callable[[dict[str, str], int | None], launch.RunHandle]
    """Start a runner with these variables and (local runtime) the run lock's descriptor."""
    attach: Callable[[], launch.RunHandle | None]
    container: str | None = None


def prepare(recipe: Recipe, plan: Plan, run_dir: RunDirectory, options: RunOptions) -> Launch:
    """Everything the start needs, checked; nothing is written (the runner writes plan.json and
    recipe.resolved.yaml once it accepts the run)."""
    if options.runtime == "docker":
        return docker_launch(recipe, plan, run_dir, options)
    if options.gpus is not None:
        raise UsageError("--gpus applies to the docker runtime; set CUDA_VISIBLE_DEVICES")
    if options.user is not None:
        raise UsageError("--user applies to the docker runtime; the runner runs as you")
    if options.network is not None:
        raise UsageError("--network applies to the docker runtime")
    return local_launch(plan, run_dir, options)


def docker_launch(recipe: Recipe, plan: Plan, run_dir: RunDirectory, options: RunOptions) -> Launch:
    """The backend's container; the launcher keeps the run lock on the host and says so."""
    user = ContainerUser.parse(options.user)
    check_run_directory(user, run_dir.root)
    paths = RunPaths(options.recipe.resolve(), run_dir.root, cache_for(user, hf_cache_path()))
    spec = build_container_spec(
        plan,
        recipe,
        paths,
        user=str(user),
        gpus=parse_gpus(options.gpus),
        mode=options.mode,
        topology=options.topology,
        network=options.network,
    )
    launch.check_network(spec)
    keep = options.keep_container

    def start(handoff: dict[str, str], lock_fd: int | None) -> launch.RunHandle:
        handoff = {**handoff, LOCK_ENV: HELD_ON_HOST} if lock_fd is not None else handoff
        run_dir.log.touch()  # the launcher appends the container's output: the user's file too
        hand_over(user, run_dir.root)
        return launch.start_container(spec, run_dir.log, keep=keep, handoff=handoff)

    def attach() -> launch.RunHandle | None:
        restart = options.mode == "restart"
        return launch.attach_container(spec.name, run_dir.log, keep=keep, restart=restart)

    info = {"runtime": "docker", "container": spec.describe()}
    info["resume_command"] = resume_command(options, run_dir)
    return Launch(plan_json(plan, info), start, attach, spec.name)


def local_launch(plan: Plan, run_dir: RunDirectory, options: RunOptions) -> Launch:
    """The runner installed here, as a child process that inherits the run lock and keeps it:
    the lock outlives a killed launcher until the runner has stopped."""
    argv = local_command(plan, options, run_dir)
    topology_env = options.topology.environment()

    def start(handoff: dict[str, str], lock_fd: int | None) -> launch.RunHandle:
        # PYTHONSAFEPATH: `python -m` would put the current folder first on the path, where a
        # stray `copy.py` hides the standard library's from the runner and its workers.
        env = {**os.environ, **topology_env, **handoff, "PYTHONSAFEPATH": "1"}
        if lock_fd is None:
            return launch.start_local(argv, run_dir.log, env)
        env[LOCK_ENV] = f"fd:{lock_fd}"
        return launch.start_local(argv, run_dir.log, env, (lock_fd,))

    info: dict[str, Any] = {"runtime": "local", "argv": argv, "environment": topology_env}
    info["resume_command"] = resume_command(options, run_dir)
    return Launch(plan_json(plan, info), start, lambda: None)


def plan_json(plan: Plan, launch_info: dict[str, Any]) -> dict[str, Any]:
    """What plan.json says: the plan, and how it was launched."""
    return {**plan.model_dump(mode="json"), "launch": launch_info}


def begin(launcher: Launch, claim: LaunchClaim, run_dir: RunDirectory) -> launch.RunHandle:
    """Follow the runner still training this run directory (its launcher died), else start one."""
    handle = launcher.attach()
    if handle is not None:
        claim.following()
        typer.echo(f"following {handle.description}, still training here; log: {run_dir.log}")
        return handle
    claim.new_attempt()
    handoff = {PLAN_ENV: json.dumps(launcher.plan_json)}
    handle = launcher.start(handoff, claim.lock_fd)
    typer.echo(f"started {handle.description}; log: {run_dir.log}")
    return handle


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


def run_recipe(options: RunOptions) -> int:
    """Check, plan, claim the run directory, start the runner (or follow the one still training
    there), report; the return value is the exit code. A closed stdout (`| head -1`) only
    silences the launcher."""
    with survive_closed_output():
        return _run_recipe(options)


def _run_recipe(options: RunOptions) -> int:
    recipe, summaries = check_recipe(options.recipe)
    parse_gpus(options.gpus)
    ContainerUser.parse(options.user)
    check_output(recipe, options.output)
    run_dir = RunDirectory(recipe.run_dir(options.output))
    run_dir.check_usable(options.mode)
    plan = make_plan(recipe, run_dir, options)
    if options.mode != "restart":
        refuse_a_different_run(recipe, run_dir, plan.backend)  # before any runner starts
    launcher = prepare(recipe, plan, run_dir, options)
    # The runner checks again only the data files that changed since this check.
    launcher.plan_json[checked_data.CHECKED_KEY] = checked_data.handoff(recipe, summaries)
    if not options.quiet:
        typer.echo("\n".join(plan.summary_lines()))
    if plan.image and plan.image_pull:
        build = get_backend(plan.backend).build_command(plan.device)
        pull_image(plan.image, plan.image.split("/", 1)[0], build, quiet=options.quiet)
    typer.echo(f"run directory: {run_dir.root}")
    record = holder_record(container=launcher.container)
    first_node = options.topology.node_rank == 0
    with LaunchClaim(run_dir, record, lock=first_node) as claim:
        started, since = time.monotonic(), time.time()
        with StopOnSignal(STOP_TIMEOUT_S) as stopper:
            handle = begin(launcher, claim, run_dir)
            stopper.attach(handle)
            code = follow(handle, run_dir, options.quiet, stopper)
        took = time.monotonic() - started
        outcome = Outcome(code, stopper.signum, claim.output(), took, since)
        outcome.refused = claim.finish(code)
        return report(outcome, run_dir, resume_command(options, run_dir), options.recipe)
