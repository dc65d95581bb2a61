"""The work behind `validate`, `plan` and `list-backends`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from aligntune.cli.output import echo_error
from aligntune.core.algorithms import ALGORITHMS, get_algorithm
from aligntune.core.backends import BACKEND_NAMES, get_backend
from aligntune.core.errors import AlignTuneError, ExitCode
from aligntune.core.loader import load_recipe
from aligntune.core.preflight import check_inputs
from aligntune.core.recipe import Recipe

if TYPE_CHECKING:  # selection is imported by the commands that plan, not by `validate`
    from aligntune.cli.engine import EngineProbe
    from aligntune.core.plan import HostInfo, Plan, Runtime


def load_checked(path: Path) -> Recipe:
    """Load a recipe and check its local inputs; errors name the field or the file and line."""
    recipe = load_recipe(path)
    try:
        check_inputs(recipe)
    except AlignTuneError as exc:
        exc.args = (f"{path}: {exc}",)
        raise
    return recipe


def validate_recipes(paths: list[Path]) -> int:
    """Validate each recipe; print a line per valid one and every problem of the others."""
    failures = 0
    for path in paths:
        try:
            recipe = load_checked(path)
        except AlignTuneError as exc:
            failures += 1
            echo_error(exc)
            continue
        algorithm = get_algorithm(recipe.algorithm.name)
        typer.echo(
            f"ok: {path} ({algorithm.name} on {recipe.model.name_or_path}, "
            f"data {recipe.data.train.path}, backend {recipe.backend})"
        )
    if failures:
        typer.echo(f"{failures} of {len(paths)} recipe(s) invalid", err=True)
    return ExitCode.USER_INPUT if failures else ExitCode.OK


def plan_recipe(
    path: Path, backend: str | None, runtime: str, engine: EngineProbe | None = None
) -> Plan:
    """Load and check a recipe, probe the host (the engine via `engine` if already asked), and
    select the backend."""
    from aligntune.cli.host import probe_host
    from aligntune.core.selection import select_backend

    recipe = load_checked(path)
    state = engine.result() if engine is not None else None
    host, _ = probe_host(docker=runtime == "docker", engine=state)
    return select_backend(recipe, host, backend=backend, runtime=_as_runtime(runtime))


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
