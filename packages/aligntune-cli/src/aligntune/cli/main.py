"""The `aligntune` command. Each command gathers its options and calls one function that works;
`main()` is the single error boundary: known errors print clean lines and exit with their code.
"""

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from aligntune.cli.images_commands import images_app
from aligntune.cli.launch_commands import launch_app
from aligntune.cli.options import (
    BackendOpt,
    GpusOpt,
    KeepContainerOpt,
    MasterAddrOpt,
    MasterPortOpt,
    NetworkOpt,
    NnodesOpt,
    NodeRankOpt,
    OutputOpt,
    PullOpt,
    QuietOpt,
    RecipeArg,
    RestartOpt,
    ResumeOpt,
    RuntimeOpt,
    UserOpt,
    output_dir,
)
from aligntune.core.backends import BACKENDS
from aligntune.core.errors import DEBUG_ENV, AlignTuneError, ExitCode, UsageError
from aligntune.core.images import PULL_POLICIES, PullPolicy
from aligntune.core.version import VERSION

app = typer.Typer(
    name="aligntune",
    help="Fine-tune and align language models from one YAML recipe, in TRL or Unsloth.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)
app.add_typer(launch_app, name="launch")
app.add_typer(images_app, name="images")


def _version(value: bool) -> None:
    if value:
        typer.echo("\n".join(version_lines()))
        raise typer.Exit()


def version_lines() -> list[str]:
    """The version, then each image a docker run uses: released (by digest) or the local build."""
    from aligntune.core.images import released_image

    lines = [f"aligntune {VERSION}"]
    for backend in BACKENDS:
        for device in backend.devices:
            released = released_image(backend, device)
            image = f"{backend.image_name} {device}:"
            if released is None:
                lines.append(f"{image:22} {backend.image_tag(device)} (local build)")
            else:
                lines.append(f"{image:22} {released.reference} (released)")
    return lines


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and the images it runs.",
        ),
    ] = False,
) -> None:
    """Fine-tune and align language models from one YAML recipe, in TRL or Unsloth."""


@app.command()
def validate(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe files.", show_default=False)],
) -> None:
    """Check recipes and their local data; one line per valid recipe, every problem otherwise."""
    from aligntune.cli.commands import validate_recipes

    raise typer.Exit(validate_recipes(recipes))


@app.command()
def plan(
    recipe: RecipeArg,
    backend: BackendOpt = None,
    runtime: RuntimeOpt = "docker",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    show_sample: Annotated[
        bool,
        typer.Option(
            "--show-sample",
            help="Print the first training row rendered with the chat template, the trained "
            "spans between [[ and ]].",
        ),
    ] = False,
    pull: PullOpt = "missing",
) -> None:
    """Show which backend, device, image and runtime a run would use, why, and what it mounts."""
    from aligntune.cli.engine import EngineProbe

    # The engine answers while the recipe models are imported and the recipe is checked.
    engine = EngineProbe() if _runtime(runtime) == "docker" else None
    from aligntune.cli.commands import plan_recipe

    report = plan_recipe(
        recipe, backend, _runtime(runtime), engine, show_sample=show_sample, pull=_pull(pull)
    )
    typer.echo(report.as_json() if as_json else "\n".join(report.lines()))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.", show_default=False)],
) -> None:
    """Write a run's report (summary, metrics.csv, plots, report.md, model card) from its events."""
    from aligntune.cli.run_report import regenerate

    typer.echo("\n".join(regenerate(run_dir)))


@app.command("list-backends")
def list_backends() -> None:
    """Each backend, its algorithms, and whether it can run on this host and why."""
    from aligntune.cli.commands import backends_report

    typer.echo(backends_report())


@app.command("list-backends-cmd", hidden=True)
def list_backends_cmd() -> None:
    """The name the original AlignTune docs use for list-backends."""
    list_backends()


@app.command()
def diagnose(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Report Python, docker, compose, GPUs, images and runners, each problem with its fix."""
    from aligntune.cli.diagnose import diagnose_report

    report = diagnose_report()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo("\n".join(report.lines()))


@app.command()
def run(
    recipe: RecipeArg,
    backend: BackendOpt = None,
    runtime: RuntimeOpt = "docker",
    output: OutputOpt = None,
    gpus: GpusOpt = None,
    resume: ResumeOpt = False,
    restart: RestartOpt = False,
    quiet: QuietOpt = False,
    user: UserOpt = None,
    keep_container: KeepContainerOpt = False,
    nnodes: NnodesOpt = None,
    node_rank: NodeRankOpt = None,
    master_addr: MasterAddrOpt = None,
    master_port: MasterPortOpt = None,
    network: NetworkOpt = None,
    pull: PullOpt = "missing",
) -> None:
    """Train a recipe in its backend's container (or --runtime local), following its progress."""
    from aligntune.cli.run import RunOptions, run_recipe
    from aligntune.cli.topology import resolve_topology

    topology = resolve_topology(
        os.environ,
        nnodes=nnodes,
        node_rank=node_rank,
        master_addr=master_addr,
        master_port=master_port,
    )
    if resume and restart:
        raise typer.BadParameter("use --resume or --restart, not both", param_hint="--resume")
    options = RunOptions(
        recipe=recipe,
        backend=backend,
        runtime="local" if _runtime(runtime) == "local" else "docker",
        output=output,
        gpus=gpus,
        mode="resume" if resume else "restart" if restart else "auto",
        quiet=quiet,
        user=user,
        keep_container=keep_container,
        topology=topology,
        network=network,
        pull=_pull(pull),
    )
    raise typer.Exit(run_recipe(options))


@app.command()
def export(
    run_dir: Annotated[
        Path, typer.Argument(help="A finished run's directory.", show_default=False)
    ],
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="merged (default), adapter or gguf."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            parser=output_dir,
            metavar="<path>",
            help="A new folder (default: RUN_DIR-FORMAT, beside the run).",
        ),
    ] = None,
    runtime: RuntimeOpt = "docker",
    user: UserOpt = None,
) -> None:
    """Write a finished run's model into a new folder (merged or adapter), checked."""
    from aligntune.cli.export import ExportOptions, export_run, stopped_by_sigterm

    options = ExportOptions(
        run_dir=run_dir,
        fmt=fmt,
        output=output,
        runtime="local" if _runtime(runtime) == "local" else "docker",
        user=user,
    )
    with stopped_by_sigterm():
        code = export_run(options)
    raise typer.Exit(code)


def _runtime(value: str) -> str:
    if value not in ("docker", "local"):
        raise typer.BadParameter(f"{value!r}; use docker or local", param_hint="--runtime")
    return value


def _pull(value: str) -> PullPolicy:
    for policy in PULL_POLICIES:
        if value == policy:
            return policy
    raise typer.BadParameter(f"{value!r}; use {', '.join(PULL_POLICIES)}", param_hint="--pull")


def command_path(argv: list[str]) -> str:
    """The command `argv` names, as its help shows it: `aligntune images build`."""
    command: Any = typer.main.get_command(app)
    words = ["aligntune"]
    for word in argv:
        command = getattr(command, "commands", {}).get(word)
        if command is None:
            break
        words.append(word)
    return " ".join(words)


def main() -> None:
    """Console-script entry point: run the app, turning aligntune errors into clean exits."""
    try:
        app()
    except AlignTuneError as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        from aligntune.cli.output import echo_error

        if isinstance(exc, UsageError):
            echo_error(exc, default_hint=f"{command_path(sys.argv[1:])} --help lists the options")
        else:
            echo_error(exc, default_hint=f"set {DEBUG_ENV}=1 for a traceback")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED_SIGINT)


if __name__ == "__main__":
    main()
