"""The manifests of `aligntune launch kubernetes --nodes 2`, run as two local processes (gloo,
CPU): each is the runner the image's entrypoint starts, with the arguments and environment the
generated Indexed Job gives its pod, plus what Kubernetes adds itself (JOB_COMPLETION_INDEX and
the host name `<job>-<index>`). Two things stand in for the cluster, and only those two: the
claim is a folder holding each volume mount's subPath (the mount paths in the arguments read as
those folders), and the name of index 0 behind the headless Service, which the cluster's DNS
would answer, resolves to 127.0.0.1 through /etc/hosts in a private mount namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli.test_launch_kubernetes import launch, pod_environment
from test_distributed import TINY, assert_one_distributed_run, tiny_recipe

from aligntune.core.backends import get_backend
from aligntune.core.topology import (
    JOB_COMPLETION_INDEX,
    MASTER_ADDR,
    MASTER_PORT,
    NNODES,
    NODE_RANK,
)

STEPS = 4
SCHEDULED = (NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, JOB_COMPLETION_INDEX)


def pod_folders(container: dict[str, Any], claim: Path) -> dict[str, Path]:
    """Each mount path of the pod's claim -> the claim's folder (its subPath), made as the
    cluster would make it."""
    folders = {}
    for mount in container["volumeMounts"]:
        if "subPath" in mount:
            folders[mount["mountPath"]] = claim / mount["subPath"]
            folders[mount["mountPath"]].mkdir(parents=True, exist_ok=True)
    return folders


def on_claim(value: str, folders: dict[str, Path]) -> str:
    """`value` with each mount path read as the claim's folder."""
    for mount_path, folder in folders.items():
        value = value.replace(mount_path, str(folder))
    return value


def in_the_cluster_dns(argv: list[str], name: str, tmp_path: Path) -> list[str]:
    """`argv` in a private mount namespace whose /etc/hosts also answers `name` -> 127.0.0.1."""
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + f"\n127.0.0.1 {name}\n")
    namespace = ["unshare", "--mount"] + (["--map-root-user"] if os.geteuid() else [])
    bind = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return [*namespace, "sh", "-c", bind, str(hosts), *argv]


@pytest.mark.training
def test_two_pods_of_the_indexed_job_meet_behind_the_service_and_train(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path / "recipe", "sft", STEPS)
    for name in ("model", "data"):  # the pods see only the recipe's folder, copied into recipe/
        (recipe.parent / name).unlink()
        shutil.copytree(TINY / name, recipe.parent / name)
    manifest = tmp_path / "job.yaml"
    result = launch(str(recipe), "--nodes", "2", "--output", str(manifest), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    *_, job = yaml.safe_load_all(manifest.read_text(encoding="utf-8"))
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    folders = pod_folders(container, tmp_path / "claim")
    shutil.copytree(recipe.parent, folders["/aligntune/recipe"], dirs_exist_ok=True)
    # The image's entrypoint is the backend's runner; the pod's args follow it.
    entrypoint = [sys.executable, "-m", get_backend("trl").runner_module]
    args = [on_claim(arg, folders) for arg in container["args"]]
    index_zero = f"{job['metadata']['name']}-0.{pod['subdomain']}"
    # Nothing of this machine's own topology (a CI job under Slurm, say) reaches the pods.
    base = {k: v for k, v in os.environ.items() if k not in SCHEDULED and k[:6] != "SLURM_"}
    pods = []
    for index in (0, 1):
        env = {k: on_claim(v, folders) for k, v in pod_environment(job, index).items()}
        pods.append(
            subprocess.Popen(
                in_the_cluster_dns([*entrypoint, *args], index_zero, tmp_path),
                env={**base, **env, "ALIGNTUNE_RDZV_TIMEOUT": "120"},
                cwd=on_claim(container["workingDir"], folders),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600)[0] for p in pods]
    for index, output in enumerate(outputs):
        print(f"--- pod {index}\n{output[-4000:]}")
    assert [p.returncode for p in pods] == [0, 0]
    for index, output in enumerate(outputs):
        assert f"NODE_RANK={index} from JOB_COMPLETION_INDEX" in output
        assert f"MASTER_ADDR={index_zero} from index 0 behind" in output
    assert_one_distributed_run(folders["/aligntune/run"], STEPS)
