"""`aligntune launch slurm|kubernetes`: the job files that run a recipe on a cluster (the work
is in `slurm.py` and `kubernetes.py`, imported only when a command runs)."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from aligntune.cli.options import BackendOpt, RecipeArg, output_dir

launch_app = typer.Typer(
    help="Write (and submit) the job files that run a recipe on a cluster.", no_args_is_help=True
)


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
        str,
        typer.Option(
            help="docker, apptainer or enroot (the backend's image through that runtime), or "
            "none (the runner installed on the node)."
        ),
    ] = "docker",
    backend: BackendOpt = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            parser=output_dir,
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
