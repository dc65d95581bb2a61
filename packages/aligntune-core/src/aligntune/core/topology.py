"""The topology contract between whatever starts a multi-node job and the runner: the variables
that say where a process sits (as compose and `aligntune run` set them) and torchrun's default
rendezvous port. The launcher resolves them from its flags and passes them by value; the runner
reads them to start its worker group. Where they are unset, Slurm's and a Kubernetes Indexed
Job's own variables give them (`topology_settings`), each value with where it came from."""

import re
from collections.abc import Mapping
from dataclasses import dataclass

NNODES = "NNODES"
"""How many machines take part."""
NODE_RANK = "NODE_RANK"
"""This machine's rank, from 0."""
MASTER_ADDR = "MASTER_ADDR"
"""Node 0's host name or address: where the nodes meet."""
MASTER_PORT = "MASTER_PORT"
"""The rendezvous port on node 0."""
DEFAULT_PORT = 29500
"""torchrun's default rendezvous port."""

SLURM_NNODES = "SLURM_NNODES"
"""Slurm: the job's node count (with one task per node, the topology's NNODES)."""
SLURM_NODEID = "SLURM_NODEID"
"""Slurm: this node's index in the job, from 0."""
SLURM_JOB_NODELIST = "SLURM_JOB_NODELIST"
"""Slurm: the job's hosts in hostlist syntax (`gpu[01-03,07]`); the first one is the rendezvous."""
JOB_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
"""Kubernetes Indexed Job: this pod's index, from 0."""
RENDEZVOUS_SERVICE = "ALIGNTUNE_RENDEZVOUS_SERVICE"
"""Set by `aligntune launch kubernetes`: the headless Service through which index 0 is found."""
HOSTNAME = "HOSTNAME"
"""A pod's host name; an Indexed Job's pods are `<job>-<index>`."""


@dataclass(frozen=True)
class Setting:
    """One topology value and the variable (or flag) it came from."""

    value: str
    source: str


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def first_host(nodelist: str) -> str | None:
    """The first host of a Slurm hostlist: `node[07-09,01]` -> `node07`; None when empty.

    Slurm keeps the order it allocated in, and every node of a job sees the same list."""
    head = _split_top_level(nodelist.strip())[0].strip()
    match = re.fullmatch(r"([^\[\]]*)\[([^\]]+)\](.*)", head)
    if match is None:
        return head or None
    prefix, ranges, rest = match.groups()
    first = ranges.split(",")[0].split("-")[0]
    return first_host(f"{prefix}{first}{rest}")


def _slurm(env: Mapping[str, str]) -> dict[str, Setting]:
    found: dict[str, Setting] = {}
    if env.get(SLURM_NNODES):
        found[NNODES] = Setting(env[SLURM_NNODES], SLURM_NNODES)
    if env.get(SLURM_NODEID):
        found[NODE_RANK] = Setting(env[SLURM_NODEID], SLURM_NODEID)
    host = first_host(env.get(SLURM_JOB_NODELIST, ""))
    if host:
        found[MASTER_ADDR] = Setting(host, f"first host of {SLURM_JOB_NODELIST}")
    return found


def _kubernetes(env: Mapping[str, str]) -> dict[str, Setting]:
    index = env.get(JOB_COMPLETION_INDEX, "")
    if not index:
        return {}
    found = {NODE_RANK: Setting(index, JOB_COMPLETION_INDEX)}
    service, hostname = env.get(RENDEZVOUS_SERVICE, ""), env.get(HOSTNAME, "")
    job = hostname.removesuffix(f"-{index}") if hostname.endswith(f"-{index}") else ""
    if service and job:
        found[MASTER_ADDR] = Setting(
            f"{job}-0.{service}", f"index 0 behind {RENDEZVOUS_SERVICE} ({HOSTNAME}={hostname})"
        )
    return found


def topology_settings(env: Mapping[str, str]) -> dict[str, Setting]:
    """NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT as the environment gives them, each with its
    source: the variables themselves win, then Kubernetes' Indexed Job, then Slurm's job."""
    settings = {**_slurm(env), **_kubernetes(env)}
    for name in (NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT):
        if env.get(name):
            settings[name] = Setting(env[name], name)
    return settings
