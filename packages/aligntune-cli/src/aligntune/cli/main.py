"""The `aligntune` command. Each command gathers its options and calls one function that works;
`main()` is the single error boundary: known errors print clean lines and exit with their code.
"""

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from aligntune.core.backends import BACKEND_NAMES, BACKENDS
from aligntune.core.errors import DEBUG_ENV, AlignTuneError, ExitCode
from aligntune.core.images import PULL_POLICIES, PullPolicy
from aligntune.core.topology import DEFAULT_PORT, MASTER_ADDR, MASTER_PORT, NNODES, NODE_RANK
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

IMAGE_NAMES = tuple(backend.image_name for backend in BACKENDS)
RecipeArg = Annotated[Path, typer.Argument(help="A recipe YAML file.", show_default=False)]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        "-b",
        help=f"auto, {' or '.join(BACKEND_NAMES)} (default: the recipe's backend).",
    ),
]
RuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime", help="docker (the backend's image) or local (the runner installed here)."
    ),
]


def _output_dir(value: str) -> Path:
    # An empty --output would silently mean the current folder.
    if not value.strip():
        raise typer.BadParameter("an empty path; name the run directory")
    return Path(value)


OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        parser=_output_dir,
        metavar="<path>",
        help="Run directory (default: runs/<name>).",
    ),
]
GpusOpt = Annotated[
    str | None, typer.Option(help="GPUs for a cuda image: all, a count, or device=0,1.")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Resume; fail if there is no earlier run.")
]
RestartOpt = Annotated[
    bool, typer.Option("--restart", help="Discard an earlier run and start over.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Plain progress lines.")]
UserOpt = Annotated[
    str | None, typer.Option(help="uid:gid the container runs as (default: yours).")
]
KeepContainerOpt = Annotated[
    bool, typer.Option("--keep-container", help="Keep the stopped container for `docker inspect`.")
]
NnodesOpt = Annotated[
    int | None, typer.Option(help=f"Machines in the job (default: {NNODES}, else 1).")
]
NodeRankOpt = Annotated[
    int | None, typer.Option(help=f"This machine's rank, from 0 (default: {NODE_RANK}).")
]
MasterAddrOpt = Annotated[
    str | None, typer.Option(help=f"Node 0's address (default: {MASTER_ADDR}).")
]
MasterPortOpt = Annotated[
    int | None,
    typer.Option(help=f"Rendezvous port (default: {MASTER_PORT}, else {DEFAULT_PORT})."),
]
PullOpt = Annotated[
    str,
    typer.Option(
        "--pull",
        help="When to pull the released image: missing (if absent), never, always. "
        "A local build wins unless always.",
    ),
]
NetworkOpt = Annotated[
    str | None,
    typer.Option(help="Docker network: host (default with several nodes) or a named network."),
]


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
            parser=_output_dir,
            metavar="<path>",
            help="A new folder (default: RUN_DIR-FORMAT, beside the run).",
        ),
    ] = None,
    runtime: RuntimeOpt = "docker",
    user: UserOpt = None,
) -> None:
    """Write a finished run's model into a new folder (merged or adapter), checked."""
    from aligntune.cli.export import ExportOptions, export_run

    options = ExportOptions(
        run_dir=run_dir,
        fmt=fmt,
        output=output,
        runtime="local" if _runtime(runtime) == "local" else "docker",
        user=user,
    )
    raise typer.Exit(export_run(options))


images_app = typer.Typer(help="Build and list the runner images.", no_args_is_help=True)
app.add_typer(images_app, name="images")


@images_app.command("build")
def images_build(
    image: Annotated[str, typer.Argument(help=" or ".join(IMAGE_NAMES) + ".")] = IMAGE_NAMES[0],
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cpu).")] = None,
    base_image: Annotated[
        str | None, typer.Option(help="Base image (default: the public one, else a local one).")
    ] = None,
) -> None:
    """Build a runner image from this checkout (no registry needed)."""
    from aligntune.cli.images import build_image

    build_image(image, device, base_image)


@images_app.command("publish")
def images_publish(
    image: Annotated[str, typer.Argument(help=" or ".join(IMAGE_NAMES) + ".")],
    registry: Annotated[
        str, typer.Option(help="The registry host[:port] to push to.", show_default=False)
    ],
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    record: Annotated[
        Path | None,
        typer.Option(
            help="The released-images file to record the digest in (default: the "
            "checkout's, which the aligntune-core wheel packages)."
        ),
    ] = None,
) -> None:
    """Push a local build to a registry and record its digest for the release (maintainers)."""
    from aligntune.cli.publish import publish_image

    publish_image(image, device, registry, record)


@images_app.command("list")
def images_list() -> None:
    """The aligntune images in the docker engine, with device, size and lock hash."""
    from aligntune.cli.images import list_images

    typer.echo("\n".join(list_images()))


launch_app = typer.Typer(
    help="Write (and submit) the job files that run a recipe on a cluster.", no_args_is_help=True
)
app.add_typer(launch_app, name="launch")


ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the --output file if it exists.")]


@launch_app.command("slurm")
def launch_slurm(
    recipe: RecipeArg,
    nodes: Annotated[int, typer.Option(help="Nodes; one Slurm task each.")] = 1,
    gpus_per_node: Annotated[int, typer.Option(help="GPUs per node (0: train on CPU).")] = 0,
    partition: Annotated[str | None, typer.Option(help="Slurm partition.")] = None,
    time: Annotated[
        str | None, typer.Option(help="Time limit, as Slurm writes it (e.g. 2:00:00).")
    ] = None,
    container: Annotated[
        str, typer.Option(help="docker (the backend's image) or none (the runner on the node).")
    ] = "docker",
    backend: BackendOpt = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            parser=_output_dir,
            help="Run directory on a shared filesystem "
            "(default: the recipe's output.dir, else runs/<name>).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The sbatch script to write (default: <name>.sbatch)."),
    ] = None,
    submit: Annotated[bool, typer.Option("--submit", help="Submit it with sbatch.")] = False,
    force: ForceOpt = False,
) -> None:
    """Write an sbatch script that trains RECIPE on Slurm nodes (and submit it with --submit)."""
    from aligntune.cli.slurm import SlurmJob
    from aligntune.cli.slurm import launch_slurm as write_and_submit
    from aligntune.core.loader import load_recipe
    from aligntune.core.outputdir import check_output

    loaded = load_recipe(recipe)
    job = SlurmJob(
        recipe_file=recipe.resolve(),
        run_dir=check_output(loaded, run_dir),
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        partition=partition,
        time=time,
        container=container,
        backend=backend,
    )
    script = output or Path(f"{loaded.run_name}.sbatch")
    argv = ["aligntune", *sys.argv[1:]]
    lines = write_and_submit(job, script, submit_job=submit, argv=argv, force=force)
    typer.echo("\n".join(lines))


@launch_app.command("kubernetes")
def launch_kubernetes(
    recipe: RecipeArg,
    nodes: Annotated[int, typer.Option(help="Pods, one per node; the index is the rank.")] = 1,
    gpus_per_node: Annotated[int, typer.Option(help="GPUs per pod (0: train on CPU).")] = 0,
    storage: Annotated[str, typer.Option(help="Size of the ReadWriteMany claim.")] = "50Gi",
    storage_class: Annotated[
        str | None, typer.Option(help="Its storage class (default: the cluster's).")
    ] = None,
    user: Annotated[str, typer.Option(help="uid:gid the pods run as (not root).")] = "1000:1000",
    backend: BackendOpt = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The manifests to write (default: <name>.k8s.yaml)."),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Create them with the Kubernetes Python client.")
    ] = False,
    namespace: Annotated[str, typer.Option(help="Namespace for --apply.")] = "default",
    force: ForceOpt = False,
) -> None:
    """Write the manifests that train RECIPE on Kubernetes pods (and create them with --apply)."""
    from aligntune.cli.kubernetes import KubernetesJob
    from aligntune.cli.kubernetes import launch_kubernetes as write_and_apply
    from aligntune.core.loader import load_recipe

    loaded = load_recipe(recipe)
    job = KubernetesJob(
        recipe_file=recipe.resolve(),
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        storage=storage,
        storage_class=storage_class,
        user=user,
        backend=backend,
    )
    manifest = output or Path(f"{loaded.run_name}.k8s.yaml")
    lines = write_and_apply(
        job,
        manifest,
        apply_to=namespace if apply else None,
        argv=["aligntune", *sys.argv[1:]],
        force=force,
    )
    typer.echo("\n".join(lines))


def _runtime(value: str) -> str:
    if value not in ("docker", "local"):
        raise typer.BadParameter(f"{value!r}; use docker or local", param_hint="--runtime")
    return value


def _pull(value: str) -> PullPolicy:
    for policy in PULL_POLICIES:
        if value == policy:
            return policy
    raise typer.BadParameter(f"{value!r}; use {', '.join(PULL_POLICIES)}", param_hint="--pull")


def main() -> None:
    """Console-script entry point: run the app, turning aligntune errors into clean exits."""
    try:
        app()
    except AlignTuneError as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        from aligntune.cli.output import echo_error

        echo_error(exc, default_hint=f"set {DEBUG_ENV}=1 for a traceback")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED_SIGINT)


if __name__ == "__main__":
    main()
