"""The container is the boundary: recipe paths that would hand a run the host (sockets, devices,
FIFOs, kernel state, links to them), and run directories a run must never write."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broken_harness import TINY, Case, Content, recipe

from aligntune.core.errors import ExitCode

RULE = r"; a recipe path names a regular file or a folder"
OUTPUT_RULE = r"; the run directory is the folder a run writes"
NO_RUN = (("validate", "recipe.yaml"), ("plan", "recipe.yaml"))
"""A problem of the host's environment, not of the recipe: `run` first finds no image here."""


def bind_socket(path: Path) -> None:
    """A unix socket at `path`, as a service (docker, a database) leaves one."""
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))


def link_to(target: str) -> Callable[[Path], None]:
    """What makes `path` a symlink to `target`."""
    return lambda path: path.symlink_to(target)


def making(name: str, make: Callable[[Path], Any], text: str) -> Content:
    """recipe.yaml's content, after `make` put `name` (a socket, a FIFO, a link) beside it."""

    def content(folder: Path) -> str:
        make(folder / name)
        return text

    return content


def deepspeed(config: str) -> str:
    """A recipe whose DeepSpeed strategy reads `config`."""
    return recipe(distributed={"strategy": "deepspeed", "config_file": config})


def data(path: str, **data_settings: Any) -> str:
    """An SFT recipe training on `path`."""
    return recipe(data={"train": {"path": path}, **data_settings})


def ppo(**algorithm: Any) -> str:
    """A PPO recipe with these algorithm settings (a reward model, or training data for one)."""
    return recipe("ppo", algorithm={"name": "ppo", **algorithm})


SFT_DATA = str(TINY / "data" / "sft.jsonl")

PATH_CASES = [
    Case(
        "config-docker-socket",
        {"recipe.yaml": deepspeed("/var/run/docker.sock")},
        r"distributed\.config_file: /var/run/docker\.sock.* is inside /(var/)?run" + RULE,
    ),
    Case(
        "config-socket-beside-recipe",
        {"recipe.yaml": making("ds.sock", bind_socket, deepspeed("ds.sock"))},
        r"distributed\.config_file: ds\.sock \(-> {dir}/ds\.sock\) is a socket" + RULE,
    ),
    Case(
        "config-socket-strategy-unused",
        {
            "recipe.yaml": making(
                "ds.sock", bind_socket, recipe(distributed={"config_file": "ds.sock"})
            )
        },
        r"distributed\.config_file: ds\.sock \(-> {dir}/ds\.sock\) is a socket" + RULE,
    ),
    Case(
        "config-link-to-docker-socket",
        {"recipe.yaml": making("ds.json", link_to("/var/run/docker.sock"), deepspeed("ds.json"))},
        r"distributed\.config_file: ds\.json \(-> /(var/)?run/docker\.sock\) is inside /(var/)?run",
    ),
    Case(
        "config-fifo",
        {"recipe.yaml": making("ds.json", os.mkfifo, deepspeed("./ds.json"))},
        r"distributed\.config_file: \./ds\.json \(-> {dir}/ds\.json\) is a FIFO \(named pipe\)",
    ),
    Case(
        "config-link-to-proc-environ",
        {"recipe.yaml": making("ds.json", link_to("/proc/self/environ"), deepspeed("ds.json"))},
        r"distributed\.config_file: ds\.json \(-> /proc/\d+/environ\) is inside /proc" + RULE,
    ),
    Case(
        "config-link-to-dev-null",
        {"recipe.yaml": making("ds.json", link_to("/dev/null"), deepspeed("ds.json"))},
        r"distributed\.config_file: ds\.json \(-> /dev/null\) is inside /dev" + RULE,
    ),
    Case(
        "data-fifo",
        {"recipe.yaml": making("train.jsonl", os.mkfifo, data("train.jsonl"))},
        r"data\.train\.path: train\.jsonl \(-> {dir}/train\.jsonl\) is a FIFO",
    ),
    Case(
        "data-socket",
        {"recipe.yaml": making("train.jsonl", bind_socket, data("./train.jsonl"))},
        r"data\.train\.path: \./train\.jsonl \(-> {dir}/train\.jsonl\) is a socket" + RULE,
    ),
    Case(
        "data-link-to-dev-zero",
        {"recipe.yaml": making("train.jsonl", link_to("/dev/zero"), data("train.jsonl"))},
        r"data\.train\.path: train\.jsonl \(-> /dev/zero\) is inside /dev" + RULE,
    ),
    Case(
        "data-link-to-proc-environ",
        {"recipe.yaml": making("train.jsonl", link_to("/proc/self/environ"), data("train.jsonl"))},
        r"data\.train\.path: train\.jsonl \(-> /proc/\d+/environ\) is inside /proc" + RULE,
    ),
    Case(
        "data-proc-environ",
        {"recipe.yaml": data("/proc/self/environ")},
        r"data\.train\.path: /proc/self/environ \(-> /proc/\d+/environ\) is inside /proc",
    ),
    Case(
        "data-dev-null",
        {"recipe.yaml": data("/dev/null")},
        r"data\.train\.path: /dev/null is inside /dev" + RULE,
    ),
    Case(
        "data-kubernetes-token",
        {"recipe.yaml": data("/var/run/secrets/kubernetes.io/serviceaccount/token")},
        r"data\.train\.path: /var/run/secrets/.*token.* is inside /(var/)?run" + RULE,
    ),
    Case(
        "eval-fifo",
        {
            "recipe.yaml": making(
                "eval.jsonl", os.mkfifo, data(SFT_DATA, eval={"path": "eval.jsonl"})
            )
        },
        r"data\.eval\.path: eval\.jsonl \(-> {dir}/eval\.jsonl\) is a FIFO",
    ),
    Case(
        "eval-link-to-sys",
        {
            "recipe.yaml": making(
                "eval.jsonl",
                link_to("/sys/power/state"),
                data(SFT_DATA, eval={"path": "eval.jsonl"}),
            )
        },
        r"data\.eval\.path: eval\.jsonl \(-> /sys/power/state\) is inside /sys" + RULE,
    ),
    Case(
        "model-link-to-proc-self",
        {
            "recipe.yaml": making(
                "model", link_to("/proc/self"), recipe(model={"name_or_path": "./model"})
            )
        },
        r"model\.name_or_path: \./model \(-> /proc/\d+\) is inside /proc" + RULE,
    ),
    Case(
        "model-root-folder",
        {"recipe.yaml": recipe(model={"name_or_path": "/"})},
        r"model\.name_or_path: / holds /dev" + RULE,
    ),
    Case(
        "model-link-to-dev",
        {
            "recipe.yaml": making(
                "model", link_to("/dev"), recipe(model={"name_or_path": "./model"})
            )
        },
        r"model\.name_or_path: \./model \(-> /dev\) is inside /dev" + RULE,
    ),
    Case(
        "model-in-dev-shm",
        {"recipe.yaml": recipe(model={"name_or_path": "/dev/shm/qwen"})},
        r"model\.name_or_path: /dev/shm/qwen is inside /dev" + RULE,
    ),
    Case(
        "model-in-run-user",
        {"recipe.yaml": recipe(model={"name_or_path": "/run/user/1000/model"})},
        r"model\.name_or_path: /run/user/1000/model is inside /run" + RULE,
    ),
    Case(
        "reward-model-socket",
        {"recipe.yaml": making("rm", bind_socket, ppo(reward_model="./rm"))},
        r"algorithm\.reward_model: \./rm \(-> {dir}/rm\) is a socket" + RULE,
    ),
    Case(
        "reward-model-link-to-dev-shm",
        {"recipe.yaml": making("rm", link_to("/dev/shm"), ppo(reward_model="./rm"))},
        r"algorithm\.reward_model: \./rm \(-> /dev/shm\) is inside /dev" + RULE,
    ),
    Case(
        "value-model-link-to-proc-root",
        {
            "recipe.yaml": making(
                "vm", link_to("/proc/1"), ppo(reward_model=str(TINY / "model"), value_model="./vm")
            )
        },
        r"algorithm\.value_model: \./vm \(-> /proc/1\) is inside /proc" + RULE,
    ),
    Case(
        "reward-training-data-fifo",
        {
            "recipe.yaml": making(
                "prefs.jsonl", os.mkfifo, ppo(train_reward_model={"data": {"path": "prefs.jsonl"}})
            )
        },
        r"algorithm\.train_reward_model\.data\.path: prefs\.jsonl \(-> .*\) is a FIFO",
    ),
]

LOOP = r"is a symlink loop: it leads back to itself, so it names no file or folder"


def loop(first: str, second: str) -> Callable[[Path], None]:
    """What makes `path` (named `first`) a link to `second`, and `second` a link back."""

    def make(path: Path) -> None:
        path.symlink_to(second)
        if second != first:
            (path.parent / second).symlink_to(first)

    return make


PATH_CASES += [
    Case(
        "data-symlink-loop",
        {"recipe.yaml": making("d.jsonl", loop("d.jsonl", "d.jsonl"), data("d.jsonl"))},
        r"data\.train\.path: d\.jsonl \(-> {dir}/d\.jsonl\) " + LOOP + RULE,
    ),
    Case(
        "model-symlink-loop",
        {"recipe.yaml": making("m1", loop("m1", "m2"), recipe(model={"name_or_path": "./m1"}))},
        r"model\.name_or_path: \./m1 \(-> {dir}/m1\) " + LOOP,
    ),
    Case(
        "eval-symlink-loop-absolute",
        {
            "recipe.yaml": lambda folder: making(
                "e.jsonl",
                loop("e.jsonl", "e.jsonl"),
                data(SFT_DATA, eval={"path": str(folder / "e.jsonl")}),
            )(folder)
        },
        r"data\.eval\.path: {dir}/e\.jsonl " + LOOP,
    ),
]

OUTPUT_CASES = [
    Case(
        "output-dir-root",
        {"recipe.yaml": recipe(output={"dir": "/"})},
        r"output\.dir: / is the root folder" + OUTPUT_RULE,
    ),
    Case(
        "output-dir-etc",
        {"recipe.yaml": recipe(output={"dir": "/etc"})},
        r"output\.dir: /etc is a system folder" + OUTPUT_RULE,
    ),
    Case(
        "output-dir-home",
        {"recipe.yaml": recipe(output={"dir": "../home"})},
        r"output\.dir: \.\./home \(-> .*/home\) is your home folder" + OUTPUT_RULE,
    ),
    Case(
        "output-dir-holds-home",
        {"recipe.yaml": recipe(output={"dir": ".."})},
        r"output\.dir: \.\. \(-> .*\) holds your home folder",
    ),
    Case(
        "output-dir-existing-file",
        {"notes.txt": "my notes\n", "recipe.yaml": recipe(output={"dir": "notes.txt"})},
        r"output\.dir: notes\.txt \(-> {dir}/notes\.txt\) is an existing file, not a folder",
    ),
    Case(
        "output-dir-link-to-etc",
        {"recipe.yaml": making("out", link_to("/etc"), recipe(output={"dir": "out"}))},
        r"output\.dir: out \(-> /etc\) is a system folder" + OUTPUT_RULE,
    ),
    Case(
        "output-dir-in-dev-shm",
        {"recipe.yaml": recipe(output={"dir": "/dev/shm/runs"})},
        r"output\.dir: /dev/shm/runs is inside /dev" + OUTPUT_RULE,
    ),
    Case(
        "output-dir-symlink-loop",
        {"recipe.yaml": making("out", loop("out", "out"), recipe(output={"dir": "out"}))},
        r"output\.dir: out \(-> {dir}/out\) " + LOOP + OUTPUT_RULE,
    ),
    Case(
        "output-flag-symlink-loop",
        {"recipe.yaml": making("a", loop("a", "b"), recipe())},
        r"--output: a/run \(-> {dir}/a/run\) " + LOOP + OUTPUT_RULE,
        commands=(("run", "recipe.yaml", "--output", "a/run"),),
    ),
    Case(
        "output-flag-root",
        {"recipe.yaml": recipe()},
        r"--output: / is the root folder" + OUTPUT_RULE,
        commands=(("run", "recipe.yaml", "--output", "/"),),
    ),
    Case(
        "output-flag-usr",
        {"recipe.yaml": recipe()},
        r"--output: /usr is a system folder" + OUTPUT_RULE,
        commands=(("run", "recipe.yaml", "--output", "/usr"),),
    ),
    Case(
        "output-flag-var",
        {"recipe.yaml": recipe(output={"dir": "runs/mine"})},
        r"--output: /var is a system folder" + OUTPUT_RULE,
        commands=(("run", "recipe.yaml", "-o", "/var"),),
    ),
    Case(
        "output-flag-existing-file",
        {"recipe.yaml": recipe(), "model.bin": b"\x00weights"},
        r"--output: model\.bin \(-> {dir}/model\.bin\) is an existing file, not a folder",
        commands=(("run", "recipe.yaml", "--output", "model.bin"),),
    ),
    Case(
        "output-flag-proc",
        {"recipe.yaml": recipe()},
        r"--output: /proc/sys/aligntune is inside /proc" + OUTPUT_RULE,
        commands=(("run", "recipe.yaml", "--output", "/proc/sys/aligntune"),),
    ),
    Case(
        "hf-home-root",
        {"recipe.yaml": recipe()},
        r"the Hugging Face cache / is the root folder; it would be mounted read-write",
        commands=NO_RUN,
        env={"HF_HOME": "/"},
    ),
    Case(
        "hf-home-etc",
        {"recipe.yaml": recipe()},
        r"the Hugging Face cache /etc is a system folder; it would be mounted read-write",
        commands=NO_RUN,
        env={"HF_HOME": "/etc"},
    ),
    Case(
        "hf-home-holds-the-inputs",
        {"recipe.yaml": recipe()},
        rf"the Hugging Face cache {re.escape(str(TINY))} holds {re.escape(str(TINY))}/\S+, which "
        r"the container only reads; it would be mounted read-write",
        commands=NO_RUN,
        env={"HF_HOME": str(TINY)},
    ),
]

SLURM = ("launch", "slurm", "recipe.yaml", "--output", "job.sbatch")
RUNTIME_CASES = [
    Case(
        "slurm-unknown-container-runtime",
        {"recipe.yaml": recipe()},
        r"--container 'singularity': use one of docker, apptainer, enroot, none",
        commands=((*SLURM, "--container", "singularity"),),
        exit_code=ExitCode.USAGE,
    ),
    Case(
        "slurm-apptainer-run-directory-with-a-comma",
        {"recipe.yaml": recipe()},
        r"--container apptainer: {dir}/runs,v2 contains ',', which apptainer's mount option "
        r"cannot carry in a path; it would be mounted at /aligntune/run",
        commands=((*SLURM, "--container", "apptainer", "--run-dir", "runs,v2"),),
    ),
    Case(
        "slurm-enroot-recipe-folder-with-a-space",
        {"my recipes/recipe.yaml": recipe()},
        r"--container enroot: {dir}/my recipes contains ' ', which enroot's mount option "
        r"cannot carry in a path; it would be mounted at /aligntune/recipe",
        commands=(("launch", "slurm", "my recipes/recipe.yaml", "--container", "enroot"),),
    ),
]
"""What a Slurm node's container runtime cannot do, refused before the script is written."""

CASES = PATH_CASES + OUTPUT_CASES + RUNTIME_CASES
