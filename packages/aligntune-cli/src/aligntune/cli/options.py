"""The options and arguments the `aligntune` commands share, each written once."""

from pathlib import Path
from typing import Annotated

import typer

from aligntune.core.backends import BACKEND_NAMES, BACKENDS
from aligntune.core.topology import DEFAULT_PORT, MASTER_ADDR, MASTER_PORT, NNODES, NODE_RANK

IMAGE_NAMES = tuple(backend.image_name for backend in BACKENDS)
RecipeArg = Annotated[Path, typer.Argument(help="A recipe YAML file.", show_default=False)]


def backend_name(value: str) -> str:
    # A misspelt backend is a usage mistake (exit 2), not a backend that cannot run here.
    if value != "auto" and value not in BACKEND_NAMES:
        raise typer.BadParameter(f"{value!r}; use auto, {', '.join(BACKEND_NAMES)}")
    return value


BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        "-b",
        parser=backend_name,
        metavar="<str>",
        help=f"auto, {' or '.join(BACKEND_NAMES)} (default: the recipe's backend).",
    ),
]
RuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime", help="docker (the backend's image) or local (the runner installed here)."
    ),
]


def output_dir(value: str) -> Path:
    # An empty --output would silently mean the current folder.
    if not value.strip():
        raise typer.BadParameter("an empty path; name the run directory")
    return Path(value)


OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        parser=output_dir,
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
