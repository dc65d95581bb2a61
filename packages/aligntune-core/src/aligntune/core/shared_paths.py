"""Several nodes read one recipe's inputs and write one run directory: those paths must be on a
filesystem every node mounts. Which filesystems are shared cannot be known from one machine, but
some folders never are: each machine has its own /tmp."""

from __future__ import annotations

from pathlib import Path

from aligntune.core.errors import UserInputError
from aligntune.core.recipe import Recipe

NODE_LOCAL_FOLDERS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))
"""Folders each machine has its own of (and clears): never shared between nodes."""


def _node_local(path: Path) -> Path | None:
    real = path.resolve()
    return next((f for f in NODE_LOCAL_FOLDERS if real.is_relative_to(f)), None)


def check_shared_paths(recipe: Recipe, run_dir: Path, nnodes: int) -> None:
    """Refuse, for more than one node, an input or run directory in a node-local folder."""
    if nnodes <= 1:
        return
    paths = {**recipe.local_references(), "the run directory": run_dir}
    for field, path in paths.items():
        folder = _node_local(path)
        if folder is not None:
            raise UserInputError(
                f"{field}: {path} is under {folder}, which each of the {nnodes} nodes has its "
                "own of; the other nodes would not find it",
                hint="put it on a filesystem every node mounts (the home or project folder)",
            )
