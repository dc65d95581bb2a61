"""The lines of an sbatch script that run the backend's image on every node through Apptainer or
enroot (`aligntune launch slurm --container apptainer|enroot`).

No `aligntune run` on the nodes here: each node's task starts the image itself, as a Kubernetes
pod does. What it runs is `build_container_spec`'s container (the image, the runner's arguments,
the mounts, the fixed variables and the names passed through), only spelled in that runtime's
flags. Where a node sits in the job the runner reads from Slurm's own variables
(`aligntune.core.topology`), passed by name like the tokens. Pure: nothing here runs anything.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from aligntune.cli.container import ContainerSpec, build_container_spec
from aligntune.cli.container_user import ContainerUser
from aligntune.cli.mounts import HF_CACHE_MOUNT, RUN_MOUNT, Mount, RunPaths, hf_cache_path
from aligntune.core.errors import UserInputError
from aligntune.core.plan import Plan
from aligntune.core.recipe import Recipe
from aligntune.core.topology import MASTER_PORT, SLURM_JOB_NODELIST, SLURM_NNODES, SLURM_NODEID

SCHEDULER_ENV = (
    SLURM_NNODES,
    SLURM_NODEID,
    SLURM_JOB_NODELIST,
    MASTER_PORT,
    "CUDA_VISIBLE_DEVICES",
)
"""What each node's runner reads of its Slurm task: its place in the job, the job's rendezvous
port, and the GPUs Slurm gave the task."""
MOUNT_VARIABLES = {RUN_MOUNT: "RUN_DIR", HF_CACHE_MOUNT: "HF_CACHE"}
"""Mounts whose source the script names once, in a variable, for whoever adapts it."""


@dataclass(frozen=True)
class Runtime:
    """One container runtime: its image file, how an image reference becomes one, and the
    characters its mount syntax cannot carry in a path."""

    name: str
    suffix: str
    unsafe: str
    """Characters that end a field of this runtime's mount syntax."""

    def source(self, plan: Plan) -> str:
        """Where the image file is made from: the registry for a released image (pinned by
        digest), the node's docker engine for a local build."""
        assert plan.image is not None
        released = plan.image_source == "release"
        if self.name == "apptainer":
            return f"docker://{plan.image}" if released else f"docker-daemon://{plan.image}"
        if released:  # enroot writes the registry apart: docker://REGISTRY#REPOSITORY@DIGEST
            registry, _, repository = plan.image.partition("/")
            return f"docker://{registry}#{repository}"
        return f"dockerd://{plan.image}"

    def convert(self, source: str) -> str:
        """The command that writes "$IMAGE_FILE.partial" from `source`."""
        if self.name == "apptainer":
            return f'apptainer build --force "$IMAGE_FILE.partial" {shlex.quote(source)}'
        return f'enroot import --output "$IMAGE_FILE.partial" {shlex.quote(source)}'


RUNTIMES = {
    "apptainer": Runtime("apptainer", ".sif", ",:"),
    "enroot": Runtime("enroot", ".sqsh", ": \t\n"),
}
"""The container runtimes that start the image without a docker engine on the nodes."""


def node_spec(plan: Plan, recipe: Recipe, recipe_file: Path, run_dir: Path) -> ContainerSpec:
    """The container `aligntune run` would start on a node, as the user who runs the job (both
    runtimes keep the caller's uid and gid: no flag spells it)."""
    paths = RunPaths(recipe_file.resolve(), run_dir, hf_cache_path())
    return build_container_spec(plan, recipe, paths, user=str(ContainerUser.parse(None)))


def _check_paths(runtime: Runtime, mounts: tuple[Mount, ...]) -> None:
    for mount in mounts:
        bad = sorted({c for c in mount.source if c in runtime.unsafe})
        if bad:
            shown = " ".join(repr(c) for c in bad)
            raise UserInputError(
                f"--container {runtime.name}: {mount.source} contains {shown}, which "
                f"{runtime.name}'s mount option cannot carry in a path; it would be mounted at "
                f"{mount.target}",
                hint="rename or move it, or use --container docker",
            )


def _source(mount: Mount) -> str:
    variable = MOUNT_VARIABLES.get(mount.target)
    return f'"${variable}"' if variable else shlex.quote(mount.source)


def _mount_option(runtime: Runtime, mount: Mount) -> str:
    if runtime.name == "apptainer":
        return f"--bind {_source(mount)}:{mount.target}" + (":ro" if mount.read_only else "")
    # enroot: fstab fields joined by colons; x-create makes the mount point in the image.
    options = "x-create=auto,bind" + (",ro" if mount.read_only else "")
    return f"--mount {_source(mount)}:{mount.target}:none:{options}"


def _wrapped(words: list[str], indent: str, width: int = 96) -> list[str]:
    """`words` as shell lines of at most `width` characters, joined by backslashes."""
    lines = [indent]
    for word in words:
        if lines[-1].strip() and len(lines[-1]) + len(word) + 3 > width:
            lines[-1] += " \\"
            lines.append(indent + "  ")
        lines[-1] += ("" if not lines[-1].strip() else " ") + word
    return lines


def _arguments(command: tuple[str, ...]) -> list[str]:
    """The runner's arguments, each option with its value: one word of `_wrapped` each."""
    words: list[str] = []
    for arg in command:
        if words and not arg.startswith("--") and words[-1].startswith("--"):
            words[-1] += " " + shlex.quote(arg)
        else:
            words.append(shlex.quote(arg))
    return words


def _pass_by_name(runtime: Runtime, names: tuple[str, ...]) -> list[str]:
    if runtime.name == "apptainer":
        # --cleanenv keeps the node's own variables (PYTHONPATH, a venv) out of the image;
        # APPTAINERENV_NAME is how a value crosses it without appearing on a command line.
        passing = 'export "APPTAINERENV_$name=${!name}"'
    else:
        passing = 'env_args+=(--env "$name")'  # enroot reads the value from the task itself
    loop = _wrapped(["for name in", *names], "  ")
    loop[-1] += "; do"
    return [
        "  # Passed by name from this node's task when set: their values are never written here.",
        *loop,
        f"    if [[ -v $name ]]; then {passing}; fi",
        "  done",
    ]


def _start(runtime: Runtime, spec: ContainerSpec, gpus: bool) -> list[str]:
    fixed = [f"--env {shlex.quote(f'{k}={v}')}" for k, v in spec.environment.items()]
    mounts = [_mount_option(runtime, m) for m in spec.mounts]
    if runtime.name == "apptainer":
        why = [
            "# `run`: the image's ENTRYPOINT with these arguments, as docker runs it; as you",
            "# (apptainer's default). --contain: no host home or /tmp, only these mounts.",
        ]
        if gpus:
            why.append(
                "# --nv: the host's NVIDIA driver and GPUs; CUDA_VISIBLE_DEVICES picks Slurm's."
            )
        head = "exec apptainer run --cleanenv --contain" + (" --nv" if gpus else "")
        options = [*mounts, *fixed, f"--pwd {spec.working_dir}"]
    else:
        why = [
            "# `start`: the image's ENTRYPOINT with these arguments; as you (never --root).",
            "# --rw: the runner may write outside its mounts, as in a docker container; only this",
            "# job's copy of the image, removed after.",
        ]
        head = 'exec enroot start --rw "${env_args[@]}"'
        if gpus:
            why += [
                "# enroot's nvidia hook mounts the driver when NVIDIA_VISIBLE_DEVICES is set",
                "# (the image does not set it); CUDA_VISIBLE_DEVICES picks the task's GPUs.",
            ]
            fixed += [
                "--env NVIDIA_VISIBLE_DEVICES=all",
                "--env NVIDIA_DRIVER_CAPABILITIES=compute,utility",
            ]
        options = [*mounts, *fixed]
    target = '"$IMAGE_FILE"' if runtime.name == "apptainer" else '"$CONTAINER"'
    command = _wrapped([target, *_arguments(spec.command)], "    ")
    start = ["  " + head + " \\", *(f"    {w} \\" for w in options), *command]
    return [f"  {line}" for line in why] + start


def image_file(runtime: Runtime, plan: Plan, run_dir: Path) -> Path:
    """Where the converted image lives: next to the run directory, on the shared filesystem."""
    assert plan.image is not None
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", plan.image.rpartition("/")[2])
    return run_dir.parent / f"{name}{runtime.suffix}"


def container_lines(
    runtime: Runtime, plan: Plan, spec: ContainerSpec, run_dir: Path, nodes: int, gpus: bool
) -> list[str]:
    """The part of the script that converts the image once, runs it on every node (status in
    `status`) and, for enroot, removes each node's copy."""
    _check_paths(runtime, spec.mounts)
    source = runtime.source(plan)
    released = plan.image_source == "release"
    srun = f"srun --nodes={nodes} --ntasks-per-node=1"
    lines = [
        'mkdir -p "$RUN_DIR"',
        f"# The image as one {runtime.name} file on the shared filesystem, which every node reads",
        "# (rather than each node converting the image into a cache of its own).",
        f"IMAGE_FILE={shlex.quote(str(image_file(runtime, plan, run_dir)))}",
        *(
            [
                "# Released, pinned by digest: converted the first time, reused by each requeue.",
                "if [[ ! -f $IMAGE_FILE ]]; then",
                f"  {runtime.convert(source)} \\",
                '    && mv -f "$IMAGE_FILE.partial" "$IMAGE_FILE" || exit 3',
                "fi",
            ]
            if released
            else [
                "# A local build (this aligntune has no released image): the first node's docker",
                "# engine must hold it (aligntune images build). Converted at each start, so a",
                "# rebuilt image is the one that runs.",
                f"{runtime.convert(source)} \\",
                '  && mv -f "$IMAGE_FILE.partial" "$IMAGE_FILE" || exit 3',
            ]
        ),
        "# Each node's Hugging Face cache (HF_HOME where this script was written).",
        f"HF_CACHE={shlex.quote(str(hf_cache_path()))}",
    ]
    if runtime.name == "enroot":
        lines += [
            "# Plain enroot (import, create, start): it needs nothing else on the nodes. Where",
            "# the pyxis plugin is installed, srun --container-image=$IMAGE_FILE with",
            "# --container-mounts does the same. Each node unpacks the image into a container of",
            "# its own, named after the job.",
            'CONTAINER="aligntune-$SLURM_JOB_ID"',
            f'{srun} enroot create --force --name "$CONTAINER" "$IMAGE_FILE" || exit 3',
        ]
    lines += [
        "",
        "# Each node's task, run by srun in that node's own environment (its SLURM_NODEID).",
        "node_task() {",
        "  local name" + (" env_args=()" if runtime.name == "enroot" else ""),
        *_pass_by_name(runtime, (*SCHEDULER_ENV, *spec.passthrough_env)),
        '  mkdir -p "$HF_CACHE"',
        *_start(runtime, spec, gpus),
        "}",
        "export -f node_task",
        "export RUN_DIR HF_CACHE IMAGE_FILE" + (" CONTAINER" if runtime.name == "enroot" else ""),
        "",
        "status=0",
        f"{srun} --kill-on-bad-exit=1 bash -c node_task || status=$?",
    ]
    if runtime.name == "enroot":
        lines.append(f'{srun} enroot remove --force "$CONTAINER"')
    return lines
