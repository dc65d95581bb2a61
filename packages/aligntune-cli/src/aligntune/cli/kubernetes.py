"""`aligntune launch kubernetes`: the manifests that train a recipe on N pods, and applying them.

An Indexed Job (one pod per node, its index the node rank), a headless Service through which
the pods find index 0, and a ReadWriteMany claim holding the recipe's folder, the run directory
and the Hugging Face cache. The container is the one `aligntune run` would start
(`build_container_spec`): the same image, command, mount points, variables and user; only where
each mount comes from differs (a folder of the claim instead of a host path).

Pure but for `apply`, which imports the official `kubernetes` client only when asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aligntune.cli.container import STOP_TIMEOUT_S, ContainerSpec, build_container_spec
from aligntune.cli.container_user import ContainerUser
from aligntune.cli.mounts import HF_CACHE_MOUNT, RECIPE_MOUNT, RUN_MOUNT, RunPaths
from aligntune.core.errors import BackendUnavailableError, UsageError, UserInputError
from aligntune.core.plan import GpuInfo, HostInfo, Plan
from aligntune.core.recipe import Recipe
from aligntune.core.selection import select_backend
from aligntune.core.topology import DEFAULT_PORT, MASTER_PORT, NNODES, RENDEZVOUS_SERVICE

SECRET_NAME = "aligntune-secrets"
"""The Secret the pods read tokens from, by key (HF_TOKEN, WANDB_API_KEY, ...); each optional."""
GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_USER = "1000:1000"
"""Pods run as a non-root user; root is refused (runAsNonRoot)."""
VOLUME = "workspace"
CLAIM_FOLDERS = {RECIPE_MOUNT: "recipe", RUN_MOUNT: "run", HF_CACHE_MOUNT: "hf-cache"}
"""Where each of a run's mount points lives in the claim."""


@dataclass(frozen=True)
class KubernetesJob:
    """What `aligntune launch kubernetes` was asked for."""

    recipe_file: Path
    nodes: int = 1
    gpus_per_node: int = 0
    storage: str = "50Gi"
    storage_class: str | None = None
    user: str = DEFAULT_USER
    backend: str | None = None
    backoff_limit: int = 3


def resource_name(recipe: Recipe) -> str:
    """The Job's and Service's name: the run's name as a DNS label (a pod adds `-<index>`)."""
    name = re.sub(r"[^a-z0-9-]+", "-", recipe.run_name.lower()).strip("-")
    return f"aligntune-{name}"[:50].rstrip("-")


def plan_pods(job: KubernetesJob, recipe: Recipe) -> Plan:
    """The plan each pod follows (the image: cuda when GPUs are asked for); refusals in one line."""
    if job.nodes < 1:
        raise UsageError(f"--nodes {job.nodes}: at least 1")
    if job.gpus_per_node < 0:
        raise UsageError(f"--gpus-per-node {job.gpus_per_node}: 0 or more")
    host = HostInfo(
        gpus=tuple(GpuInfo("requested from Kubernetes") for _ in range(job.gpus_per_node)),
        docker_available=True,
        nvidia_runtime=True,
        nnodes=job.nodes,
    )
    return select_backend(recipe, host, backend=job.backend, runtime="docker", pull="missing")


def pod_container(job: KubernetesJob, recipe: Recipe, plan: Plan) -> ContainerSpec:
    """The container `aligntune run` would start, its host paths those of the recipe's folder."""
    user = ContainerUser.parse(job.user)
    if user.uid == 0:
        raise UsageError(
            f"--user {job.user}: the pods run as non-root (runAsNonRoot); use a uid > 0"
        )
    folder = job.recipe_file.parent.resolve()
    # Host-side names only matter for what the run records; the pod sees the claim's folders.
    paths = RunPaths(job.recipe_file.resolve(), folder / "runs" / recipe.run_name, folder / ".hf")
    spec = build_container_spec(plan, recipe, paths, user=str(user))
    outside = [m for m in spec.mounts if m.target not in CLAIM_FOLDERS]
    if outside:
        raise UserInputError(
            f"{outside[0].source} is outside the recipe's folder {folder}; the pods see only "
            "that folder (copied into the volume's recipe/)",
            hint="move the recipe's data and model into its folder",
        )
    return spec


def pod_arguments(spec: ContainerSpec) -> list[str]:
    """The runner's arguments, less the launching host's names for its inputs (`--host-path`):
    in a pod, the claim's paths are the ones to record."""
    args, skip = [], False
    for arg in spec.command:
        if skip or arg == "--host-path":
            skip = not skip
            continue
        args.append(arg)
    return args


def _env(job: KubernetesJob, spec: ContainerSpec, service: str) -> list[dict[str, Any]]:
    fixed = {
        **spec.environment,
        NNODES: str(job.nodes),
        MASTER_PORT: str(DEFAULT_PORT),
        RENDEZVOUS_SERVICE: service,
    }
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in fixed.items()]
    env += [
        {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": name, "optional": True}},
        }
        for name in spec.passthrough_env
    ]
    return env


def manifests(job: KubernetesJob, recipe: Recipe, plan: Plan) -> list[dict[str, Any]]:
    """The claim, the headless Service and the Indexed Job, as Kubernetes reads them."""
    spec = pod_container(job, recipe, plan)
    name = resource_name(recipe)

    def labels() -> dict[str, str]:  # a fresh dict each time: YAML would alias a shared one
        return {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "aligntune"}

    user = ContainerUser.parse(spec.user)
    gpus = {GPU_RESOURCE: str(job.gpus_per_node)} if job.gpus_per_node else {}
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": labels()},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": job.storage}},
            **({"storageClassName": job.storage_class} if job.storage_class else {}),
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels()},
        "spec": {
            "clusterIP": "None",
            "selector": labels(),
            "ports": [{"name": "rendezvous", "port": DEFAULT_PORT}],
            # Index 0 must be found before it is ready: it is the one the others wait for.
            "publishNotReadyAddresses": True,
        },
    }
    mounts = [
        {
            "name": VOLUME,
            "mountPath": m.target,
            "subPath": CLAIM_FOLDERS[m.target],
            "readOnly": m.read_only,
        }
        for m in spec.mounts
    ]
    container = {
        "name": "runner",
        "image": spec.image,
        "args": pod_arguments(spec),
        "workingDir": spec.working_dir,
        "env": _env(job, spec, name),
        "ports": [{"name": "rendezvous", "containerPort": DEFAULT_PORT}],
        "resources": {"requests": gpus, "limits": dict(gpus)} if gpus else {},
        "volumeMounts": [*mounts, {"name": "shm", "mountPath": "/dev/shm"}],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    pod = {
        "metadata": {"labels": labels()},
        "spec": {
            "subdomain": name,
            # A failed or stopped pod restarts in place and resumes from the run directory.
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": STOP_TIMEOUT_S + 60,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": user.uid,
                "runAsGroup": user.gid,
                "fsGroup": user.gid,
            },
            "containers": [container],
            "volumes": [
                {"name": VOLUME, "persistentVolumeClaim": {"claimName": name}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
            ],
        },
    }
    indexed_job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels()},
        "spec": {
            "completionMode": "Indexed",
            "completions": job.nodes,
            "parallelism": job.nodes,
            "backoffLimit": job.backoff_limit,
            "template": pod,
        },
    }
    return [claim, service, indexed_job]


def apply(documents: list[dict[str, Any]], namespace: str) -> list[str]:
    """Create the manifests in the current kubeconfig's cluster; one line per object."""
    try:
        from kubernetes import client, config, utils  # type: ignore[import-not-found]
    except ImportError:
        raise BackendUnavailableError(
            "--apply needs the official Kubernetes Python client, which is not installed",
            hint="pip install './packages/aligntune-cli[kubernetes]' (or: kubectl apply -f the "
            "written file)",
        ) from None
    config.load_kube_config()
    api = client.ApiClient()
    lines = []
    for document in documents:
        utils.create_from_dict(api, document, namespace=namespace)
        lines.append(f"created {document['kind']} {document['metadata']['name']} in {namespace}")
    return lines


def launch_kubernetes(
    job: KubernetesJob,
    output: Path,
    *,
    apply_to: str | None,
    argv: list[str],
    force: bool = False,
) -> list[str]:
    """Check the recipe and the job, write the manifests (over an existing file only with
    `force`), and create them if asked; the lines to print."""
    import yaml

    from aligntune.cli.commands import load_checked
    from aligntune.cli.output import write_generated

    recipe = load_checked(job.recipe_file)
    plan = plan_pods(job, recipe)
    documents = manifests(job, recipe, plan)
    name = resource_name(recipe)
    header = [
        f"# Written by: {' '.join(argv)}",
        f"# Trains {recipe.run_name} ({plan.algorithm}, backend {plan.backend}, {plan.device}) on "
        f"{job.nodes} pod(s) of {plan.image}.",
        f"# Before applying: copy the recipe's folder {job.recipe_file.parent.resolve()} into the "
        f"claim {name} at recipe/;",
        f"# tokens go in the Secret {SECRET_NAME} (e.g. kubectl create secret generic "
        f"{SECRET_NAME} --from-literal=HF_TOKEN=...).",
        "# The run directory is the claim's run/; a restarted pod resumes from it.",
    ]
    body = "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in documents)
    text = "\n".join(header) + "\n" + body
    write_generated(output, text, force=force, inputs=(job.recipe_file,))
    lines = [
        f"wrote {output} (Indexed Job {name}: {job.nodes} pod(s), {plan.backend} on "
        f"{plan.device}, image {plan.image})"
    ]
    if apply_to is not None:
        lines += apply(documents, apply_to)
    else:
        lines.append(f"apply it: kubectl apply -f {output}")
    return lines
