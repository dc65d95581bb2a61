"""`aligntune launch slurm`: a complete sbatch script for a recipe, and submitting it.

The script runs one Slurm task per node. With `--container docker` or `none` each task is
`aligntune run` itself: it takes its place in the job from Slurm's variables
(`aligntune.core.topology`), and builds the container with the same mounts and user mapping as
any run (or starts the runner installed on the node). With `apptainer` or `enroot` each task
starts the same container through that runtime (`slurm_containers.py`). Nothing about the
container is restated here.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from aligntune.cli.container import STOP_TIMEOUT_S
from aligntune.cli.host import installed_runners
from aligntune.cli.slurm_containers import RUNTIMES, container_lines, node_spec
from aligntune.core.errors import BackendUnavailableError, ExitCode, UsageError
from aligntune.core.plan import GpuInfo, HostInfo, Plan, Runtime
from aligntune.core.recipe import Recipe
from aligntune.core.selection import select_backend
from aligntune.core.shared_paths import check_shared_paths
from aligntune.core.version import VERSION

CONTAINERS = ("docker", *RUNTIMES, "none")
"""How each node runs the runner: the backend's image (through docker, apptainer or enroot), or
the runner installed on the node."""
PORT_BASE, PORT_SPAN = 20000, 20000
"""Each job's rendezvous port: PORT_BASE + job id modulo PORT_SPAN (below the ephemeral range)."""
SIGNAL_AHEAD_S = STOP_TIMEOUT_S + 60
"""How long before the time limit Slurm sends SIGTERM: a checkpoint's save, and Slurm's own
up-to-60 s of slack in when it sends it."""


@dataclass(frozen=True)
class SlurmJob:
    """What `aligntune launch slurm` was asked for."""

    recipe_file: Path
    run_dir: Path
    nodes: int = 1
    gpus_per_node: int = 0
    partition: str | None = None
    time: str | None = None
    container: str = "docker"
    backend: str | None = None


def time_limit_s(value: str) -> int:
    """Slurm's --time (`MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`) in seconds."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if match is None:
        raise UsageError(f"--time {value!r}: use minutes, HH:MM:SS or D-HH:MM:SS, e.g. 2:00:00")
    days, first, second, third = (int(g) if g else None for g in match.groups())
    assert first is not None
    if days is not None:  # D-HH[:MM[:SS]]
        return ((days * 24 + first) * 60 + (second or 0)) * 60 + (third or 0)
    if third is not None:  # HH:MM:SS
        return (first * 60 + (second or 0)) * 60 + third
    return first * 60 + (second or 0)  # MM or MM:SS


def _cpu_only_torch() -> str | None:
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None
    return version if version.endswith("+cpu") else None


def plan_job(job: SlurmJob, recipe: Recipe) -> Plan:
    """The plan each node would follow; refuses, with one line, what cannot work."""
    if job.nodes < 1:
        raise UsageError(f"--nodes {job.nodes}: at least 1")
    if job.gpus_per_node < 0:
        raise UsageError(f"--gpus-per-node {job.gpus_per_node}: 0 or more")
    if job.container not in CONTAINERS:
        raise UsageError(f"--container {job.container!r}: use one of {', '.join(CONTAINERS)}")
    for flag, value in (("--partition", job.partition), ("--time", job.time)):
        if value is not None and (not value or any(c.isspace() for c in value)):
            # Each becomes an #SBATCH line: a space or newline would add lines of its own.
            raise UsageError(f"{flag} {value!r}: one word, with no spaces or line breaks")
    if job.time is not None and time_limit_s(job.time) <= SIGNAL_AHEAD_S:
        raise UsageError(
            f"--time {job.time}: the run is asked to save and stop {SIGNAL_AHEAD_S} s before "
            "the limit, so the limit must be longer than that"
        )
    torch_build = _cpu_only_torch() if job.container == "none" else None
    if job.gpus_per_node and torch_build:
        raise BackendUnavailableError(
            f"--gpus-per-node {job.gpus_per_node} with --container none: the runner here has a "
            f"CPU-only torch ({torch_build}), which would leave the GPUs idle",
            hint="use --container docker (the backend's cuda image) or a CUDA build of torch",
        )
    check_shared_paths(recipe, job.run_dir, job.nodes)
    image = job.container != "none"
    # The compute nodes, as the flags describe them (not this login node).
    host = HostInfo(
        gpus=tuple(GpuInfo("requested from Slurm") for _ in range(job.gpus_per_node)),
        docker_available=image,
        nvidia_runtime=image,
        runner_packages=installed_runners(),
        nnodes=job.nodes,
    )
    runtime: Runtime = "docker" if image else "local"
    return select_backend(recipe, host, backend=job.backend, runtime=runtime, pull="missing")


def _node_command(job: SlurmJob, plan: Plan) -> str:
    # The aligntune that wrote the script, by its interpreter: the nodes see the same path.
    argv = [sys.executable, "-m", "aligntune.cli.main", "run", str(job.recipe_file.resolve())]
    options = ["--backend", plan.backend, "--quiet"]
    if job.container == "none":
        options += ["--runtime", "local"]
    return f'{shlex.join(argv)} --output "$RUN_DIR" {shlex.join(options)}'


def _run_lines(job: SlurmJob, recipe: Recipe, plan: Plan) -> list[str]:
    srun = f"srun --nodes={job.nodes} --ntasks-per-node=1"
    if job.container in RUNTIMES:
        spec = node_spec(plan, recipe, job.recipe_file, job.run_dir)
        runtime = RUNTIMES[job.container]
        return container_lines(runtime, plan, spec, job.run_dir, job.nodes, job.gpus_per_node > 0)
    if job.container == "docker" and job.gpus_per_node:
        return [
            "# The docker engine runs outside the job's cgroup: each node hands it the GPUs Slurm",
            "# gave that node (SLURM_STEP_GPUS, read on the node itself; the batch step's",
            "# SLURM_JOB_GPUS names only the first node's).",
            "node_task() {",
            "  local gpus=${SLURM_STEP_GPUS:-${SLURM_JOB_GPUS:-}}",
            f'  exec {_node_command(job, plan)} ${{gpus:+--gpus "device=$gpus"}}',
            "}",
            "export -f node_task",
            "export RUN_DIR",
            "",
            "status=0",
            f"{srun} --kill-on-bad-exit=1 bash -c node_task || status=$?",
        ]
    return [
        "status=0",
        f"{srun} --kill-on-bad-exit=1 \\",
        f"  {_node_command(job, plan)} \\",
        "  || status=$?",
    ]


def sbatch_script(job: SlurmJob, recipe: Recipe, plan: Plan, argv: list[str]) -> str:
    """The sbatch script, commented for whoever adapts it."""
    directives = [
        f"--job-name=aligntune-{recipe.run_name}",
        f"--nodes={job.nodes}",
        "--ntasks-per-node=1",
        *([f"--gpus-per-node={job.gpus_per_node}"] if job.gpus_per_node else []),
        *([f"--partition={job.partition}"] if job.partition else []),
        *([f"--time={job.time}"] if job.time else []),
        f"--signal=TERM@{SIGNAL_AHEAD_S}",
        "--requeue",
        "--open-mode=append",
    ]
    runs = (
        f"the backend's image {plan.image} (through {job.container})"
        if plan.image
        else "the runner installed on each node (no container)"
    )
    task = (
        "`aligntune run`"
        if job.container not in RUNTIMES
        else f"the image's runner ({job.container})"
    )
    lines = [
        "#!/bin/bash",
        f"# Written by: {shlex.join(argv)}   (aligntune {VERSION})",
        f"# Trains {recipe.run_name} ({plan.algorithm}, backend {plan.backend}, {plan.device}) on "
        f"{job.nodes} node(s), in {runs}.",
        f"# One Slurm task per node: each is {task}, which takes its place in the job from",
        "# Slurm's variables (SLURM_NNODES, SLURM_NODEID, the first host of SLURM_JOB_NODELIST as",
        "# the rendezvous) and starts the recipe's distributed.processes_per_node processes.",
        "# Adapt: add #SBATCH lines (--account, --qos, --constraint, --mem) as your site needs.",
        "# Submit: sbatch THIS-FILE",
        *(f"#SBATCH {d}" for d in directives),
        f"# --signal: SIGTERM {SIGNAL_AHEAD_S} s before the time limit, so the run saves a",
        "# checkpoint and stops; --requeue: the job is started again and resumes from it.",
        "",
        "set -uo pipefail",
        "",
        "# The run directory every node writes (only the first process writes files): it must be",
        "# on a filesystem all nodes mount. A requeued job finds its checkpoints here.",
        f"RUN_DIR={shlex.quote(str(job.run_dir))}",
        "# The rendezvous port on the first node: one per job, so jobs sharing a node do not meet.",
        f"export MASTER_PORT=$(({PORT_BASE} + SLURM_JOB_ID % {PORT_SPAN}))",
        "",
        *_run_lines(job, recipe, plan),
        "",
        f"# {int(ExitCode.INTERRUPTED_SIGTERM)}: stopped by SIGTERM after saving a checkpoint (the "
        "time limit's",
        "# --signal, or a preemption): requeue, and the next start resumes from the run directory.",
        f"if [[ $status -eq {int(ExitCode.INTERRUPTED_SIGTERM)} ]]; then",
        '  echo "aligntune: stopped with a checkpoint; requeueing job $SLURM_JOB_ID to resume" >&2',
        '  scontrol requeue "$SLURM_JOB_ID"',
        "fi",
        'exit "$status"',
        "",
    ]
    return "\n".join(lines)


def submit(script: Path) -> str:
    """Submit `script` with sbatch; its job id."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise BackendUnavailableError(
            "sbatch is not on PATH: this machine is not a Slurm submit host",
            hint=f"copy {script} to a login node of the cluster and run: sbatch {script.name}",
        )
    done = subprocess.run(
        [sbatch, "--parsable", str(script)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackendUnavailableError(
            f"sbatch refused {script}: {detail[-1] if detail else f'exit {done.returncode}'}"
        )
    return done.stdout.strip().split(";")[0]


def launch_slurm(
    job: SlurmJob, script: Path, *, submit_job: bool, argv: list[str], force: bool = False
) -> list[str]:
    """Check the recipe and the job, write the sbatch script (over an existing file only with
    `force`), and submit it if asked; the lines to print."""
    from aligntune.cli.commands import load_checked
    from aligntune.cli.output import write_generated

    recipe = load_checked(job.recipe_file)
    plan = plan_job(job, recipe)
    text = sbatch_script(job, recipe, plan, argv)
    write_generated(script, text, force=force, inputs=(job.recipe_file,))
    script.chmod(0o755)
    lines = [
        f"wrote {script} ({job.nodes} node(s), {plan.backend} on {plan.device}, "
        f"container {job.container}, run directory {job.run_dir})"
    ]
    per_node = recipe.distributed.processes_per_node
    if job.gpus_per_node > per_node:
        lines.append(
            f"warning: the recipe trains {per_node} process(es) per node, each on one GPU; set "
            f"distributed.processes_per_node: {job.gpus_per_node} to use all {job.gpus_per_node}"
        )
    if submit_job:
        lines.append(f"submitted job {submit(script)}")
    else:
        lines.append(f"submit it: sbatch {script}")
    return lines
