"""The work behind `validate`, `plan` and `list-backends`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from aligntune.cli.mounts import Mount, planned_mounts
from aligntune.cli.output import echo_error
from aligntune.core.algorithms import ALGORITHMS, get_algorithm
from aligntune.core.backends import BACKEND_NAMES, get_backend
from aligntune.core.data_check import DataSummary
from aligntune.core.errors import AlignTuneError, ExitCode
from aligntune.core.loader import load_recipe
from aligntune.core.outputdir import check_output
from aligntune.core.paths import ignored_field_warnings
from aligntune.core.preflight import check_inputs, data_report
from aligntune.core.recipe import Recipe
from aligntune.core.template_check import runner_check_note, sample_lines

if TYPE_CHECKING:  # selection is imported by the commands that plan, not by `validate`
    from aligntune.cli.engine import DockerState, EngineProbe
    from aligntune.cli.topology import Topology
    from aligntune.core.images import PullPolicy
    from aligntune.core.plan import HostInfo, Plan, Runtime


def load_checked(path: Path) -> Recipe:
    """Load a recipe and check its local inputs; errors name the field or the file and line."""
    return check_recipe(path)[0]


def check_recipe(path: Path) -> tuple[Recipe, dict[str, DataSummary]]:
    """`load_checked`, with what each local data file holds, by its recipe field."""
    recipe = load_recipe(path)
    try:
        return recipe, check_inputs(recipe)
    except AlignTuneError as exc:
        exc.args = (f"{path}: {exc}",)
        raise


def load_reported(path: Path) -> tuple[Recipe, list[str]]:
    """`load_checked`, with a line per data source saying what was found in it."""
    recipe, summaries = check_recipe(path)
    return recipe, data_report(recipe, summaries)


def mount_lines(mounts: tuple[Mount, ...]) -> list[str]:
    """One `mount:` line per host path a run's container would see, and how."""
    return [f"mount:     {mount.describe()}" for mount in mounts]


def validate_recipes(paths: list[Path]) -> int:
    """Validate each recipe; print a line per valid one, with the host paths its container
    would mount, and every problem of the others."""
    failures = 0
    for path in paths:
        try:
            recipe, report = load_reported(path)
            mounts = planned_mounts(recipe, path)
        except AlignTuneError as exc:
            failures += 1
            echo_error(exc)
            continue
        algorithm = get_algorithm(recipe.algorithm.name)
        typer.echo(
            f"ok: {path} ({algorithm.name} on {recipe.model.name_or_path}, "
            f"backend {recipe.backend})"
        )
        lines = [f"data:      {line}" for line in report] + mount_lines(mounts)
        lines += [f"warning:   {w}" for w in ignored_field_warnings(recipe)]
        note = runner_check_note(recipe)
        lines += [f"note:      {note}"] if note else []
        typer.echo("\n".join(f"  {line}" for line in lines))
    if failures:
        typer.echo(f"{failures} of {len(paths)} recipe(s) invalid", err=True)
    return ExitCode.USER_INPUT if failures else ExitCode.OK


@dataclass(frozen=True)
class PlanReport:
    """What `aligntune plan` shows: the plan, and the host paths the container would mount."""

    plan: Plan
    mounts: tuple[Mount, ...]
    """Empty for the local runtime (no container: the runner reads the host paths itself)."""
    sample: tuple[str, ...] = ()
    """With --show-sample: the first training row rendered, its trained spans marked."""

    def lines(self) -> list[str]:
        """The plan's summary, one `mount:` line per mount, then the sample."""
        return self.plan.summary_lines() + mount_lines(self.mounts) + list(self.sample)

    def as_json(self) -> str:
        """plan.json's plan, with `mounts`: source, target, read_only (and `sample`: lines)."""
        data = {**self.plan.model_dump(mode="json"), "mounts": [vars(m) for m in self.mounts]}
        if self.sample:
            data["sample"] = list(self.sample)
        return json.dumps(data, indent=2)


def plan_recipe(
    path: Path,
    backend: str | None,
    runtime: str,
    engine: EngineProbe | None = None,
    show_sample: bool = False,
    pull: PullPolicy = "missing",
) -> PlanReport:
    """Load and check a recipe and what it would mount, probe the host (the engine via `engine`
    if already asked), and select the backend; with `show_sample`, render the first row."""
    from aligntune.cli.topology import resolve_topology

    recipe = load_checked(path)
    if runtime == "docker":
        mounts = planned_mounts(recipe, path)
    else:
        check_output(recipe)
        mounts = ()
    state = engine.result() if engine is not None else None
    topology = resolve_topology(os.environ)
    plan = host_plan(recipe, backend, _as_runtime(runtime), pull, topology, state)
    return PlanReport(plan, mounts, tuple(sample_lines(recipe)) if show_sample else ())


def host_plan(
    recipe: Recipe,
    backend: str | None,
    runtime: Runtime,
    pull: PullPolicy,
    topology: Topology,
    engine: DockerState | None = None,
) -> Plan:
    """Probe this host (the engine as `engine` found it, if already asked) and select the
    backend: the plan `plan` shows and `run` starts, with its warnings and the topology."""
    from aligntune.cli.host import probe_host
    from aligntune.cli.image_sources import stale_image_warning
    from aligntune.core.selection import select_backend

    host, docker = probe_host(docker=runtime == "docker", nnodes=topology.nnodes, engine=engine)
    plan = select_backend(recipe, host, backend=backend, runtime=runtime, pull=pull)
    plan.warnings += filter(None, [stale_image_warning(plan, docker.images)])
    if topology.multi_node or topology.sources:
        plan.reasons.append(f"topology: {topology.describe()}")
    return plan


def _as_runtime(value: str) -> Runtime:
    return "local" if value == "local" else "docker"


def backend_readiness(backend: str, host: HostInfo) -> tuple[str, str]:
    """('yes'|'no'|'cpu mode', why) for running `backend` on this host."""
    gpu = bool(host.gpus)
    docker_gpu = gpu and host.nvidia_runtime
    ways = []
    if host.docker_available:
        ways.append("docker engine reachable")
    if backend in host.runner_packages:
        ways.append(f"{backend} runner installed here")
    if not ways:
        return "no", "no docker engine and the runner is not installed (see aligntune diagnose)"
    spec = get_backend(backend)
    if not spec.needs_gpu:
        device = "CUDA" if (docker_gpu or gpu) else "CPU"
        return "yes", f"{' and '.join(ways)}; trains on {device}"
    if docker_gpu or (gpu and backend in host.runner_packages):
        return "yes", f"{' and '.join(ways)}; {len(host.gpus)} CUDA GPU(s)"
    cpu_ok = [a.name for a in ALGORITHMS if "cpu" in a.verified.get(backend, ())]
    lora = ", LoRA" if spec.cpu_mode_lora_only else ""
    return "cpu mode", (
        f"no usable CUDA GPU: only when asked for explicitly{lora} on CPU "
        f"({', '.join(cpu_ok)}); auto picks another backend"
    )


def backends_report() -> str:
    """The algorithm support matrix and each backend's readiness on this host."""
    from aligntune.cli.host import probe_host

    host, _ = probe_host()
    width = max(len("algorithm"), *(len(a.name) for a in ALGORITHMS)) + 2
    lines = ["algorithm".ljust(width) + "".join(b.ljust(10) for b in BACKEND_NAMES)]
    for algorithm in ALGORITHMS:
        marks = "".join(
            ("yes" if b in algorithm.backends else "no").ljust(10) for b in BACKEND_NAMES
        )
        lines.append(algorithm.name.ljust(width) + marks)
    lines.append("")
    for backend in BACKEND_NAMES:
        ready, why = backend_readiness(backend, host)
        lines.append(f"{backend}: runs here: {ready} ({why})")
    return "\n".join(lines)
