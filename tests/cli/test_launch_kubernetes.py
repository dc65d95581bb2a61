"""`aligntune launch kubernetes`: the manifests validate offline against the official schemas of
a current Kubernetes (kubernetes-validate), hold what a multi-node run needs, and each pod's
environment resolves, through the runner's own topology code, to its rank and to index 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from aligntune.cli.topology import Topology, resolve_topology
from aligntune.runners.common.torchrun import adopt_scheduler_topology

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny"
ALIGNTUNE = [sys.executable, "-m", "aligntune.cli.main"]
NAME = "aligntune-tiny-sft"


def launch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ALIGNTUNE_DEBUG"}
    return subprocess.run(
        [*ALIGNTUNE, "launch", "kubernetes", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def written(tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    result = launch(str(TINY / "sft.yaml"), *args, "--output", "job.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all((tmp_path / "job.yaml").read_text()))


@pytest.mark.parametrize("args", [["--nodes", "2", "--gpus-per-node", "4"], []])
def test_the_manifests_validate_against_the_official_schemas(
    tmp_path: Path, args: list[str]
) -> None:
    version = kubernetes_validate.latest_version()
    assert version.startswith("1.3")
    documents = written(tmp_path, *args)
    assert [d["kind"] for d in documents] == ["PersistentVolumeClaim", "Service", "Job"]
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_an_indexed_job_with_its_service_claim_gpus_and_non_root_user(tmp_path: Path) -> None:
    claim, service, job = written(tmp_path, "--nodes", "2", "--gpus-per-node", "4")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert service["spec"]["clusterIP"] == "None"
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    assert job["spec"]["backoffLimit"] == 3
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"] == NAME
    assert service["spec"]["selector"] == job["spec"]["template"]["metadata"]["labels"]
    assert pod["restartPolicy"] == "OnFailure"  # restarted in place, resuming from run/
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    (container,) = pod["containers"]
    assert container["image"] == "aligntune/trl-runner:0.1.0-cuda"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert container["args"][:4] == [
        "run",
        "/aligntune/recipe/sft.yaml",
        "--output",
        "/aligntune/run",
    ]
    assert "--host-path" not in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "HF_TOKEN"
    assert "value" not in env["HF_TOKEN"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/aligntune/recipe"]["readOnly"] is True
    assert not mounts["/aligntune/run"]["readOnly"]
    shm = [v for v in pod["volumes"] if v["name"] == mounts["/dev/shm"]["name"]]
    assert shm[0]["emptyDir"]["medium"] == "Memory"


def pod_environment(job: dict[str, Any], index: int) -> dict[str, str]:
    """What Kubernetes gives pod `index` of the Indexed Job: the fixed variables, its index, and
    its host name `<job>-<index>`."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return {
        **env,
        "JOB_COMPLETION_INDEX": str(index),
        "HOSTNAME": f"{job['metadata']['name']}-{index}",
    }


def test_each_pod_resolves_its_rank_and_finds_index_zero(tmp_path: Path) -> None:
    *_, job = written(tmp_path, "--nodes", "3")
    rendezvous = f"{NAME}-0.{NAME}"
    for index in range(3):
        env = pod_environment(job, index)
        assert resolve_topology(env) == Topology(3, index, rendezvous, 29500)
        adopt_scheduler_topology(env)
        assert (env["NODE_RANK"], env["MASTER_ADDR"]) == (str(index), rendezvous)


def test_data_outside_the_recipe_folder_is_refused(tmp_path: Path) -> None:
    recipe = yaml.safe_load((TINY / "sft.yaml").read_text())
    recipe["model"]["name_or_path"] = str(TINY / "model")
    recipe["data"]["train"]["path"] = str(TINY / "data" / "sft.jsonl")
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "sft.yaml").write_text(yaml.safe_dump(recipe))
    result = launch(str(tmp_path / "recipe" / "sft.yaml"), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{TINY / 'model'} is outside the recipe's folder" in result.stderr
    assert not list(tmp_path.glob("*.k8s.yaml"))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--user", "0"], 2, "the pods run as non-root"),
        (["--backend", "unsloth", "--nodes", "2"], 3, "Unsloth runs on one machine only"),
        (["--nodes", "0"], 2, "--nodes 0: at least 1"),
    ],
)
def test_what_cannot_work_is_refused_in_one_line(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = launch(str(TINY / "sft.yaml"), *args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_apply_without_the_client_names_the_install(tmp_path: Path) -> None:
    result = launch(str(TINY / "sft.yaml"), "--apply", cwd=tmp_path)
    assert result.returncode == 3
    assert "--apply needs the official Kubernetes Python client" in result.stderr
    assert "aligntune-cli[kubernetes]" in result.stderr
    assert (tmp_path / "tiny-sft.k8s.yaml").exists()
