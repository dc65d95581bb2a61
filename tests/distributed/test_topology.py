"""Topology from flags or the environment, passed by value into the container; bad ones refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aligntune.cli.container import PASSTHROUGH_ENV, RunPaths, build_container_spec
from aligntune.cli.topology import Topology, resolve_topology
from aligntune.core.backends import image_tag
from aligntune.core.errors import BackendUnavailableError, UsageError
from aligntune.core.loader import load_recipe, recipe_from_dict
from aligntune.core.plan import HostInfo, Plan
from aligntune.core.selection import select_backend
from aligntune.core.topology import first_host
from aligntune.runners.common.torchrun import adopt_scheduler_topology, worker_group

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny"


def test_environment_gives_the_topology() -> None:
    env = {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29600"}
    assert resolve_topology(env) == Topology(2, 1, "node0", 29600)


def test_flags_win_over_the_environment() -> None:
    env = {"NNODES": "4", "NODE_RANK": "3", "MASTER_ADDR": "a", "MASTER_PORT": "1234"}
    topology = resolve_topology(env, nnodes=2, node_rank=0, master_addr="b", master_port=4321)
    assert topology == Topology(2, 0, "b", 4321)


def test_nothing_set_is_one_node() -> None:
    topology = resolve_topology({})
    assert topology == Topology() and topology.environment() == {}


def test_default_port_for_several_nodes() -> None:
    assert resolve_topology({}, nnodes=2, master_addr="n0").master_port == 29500


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ({"NNODES": "2", "NODE_RANK": "2", "MASTER_ADDR": "n0"}, {}, "node rank 2 is not below"),
        ({}, {"nnodes": 2, "node_rank": 5, "master_addr": "n0"}, "node rank 5 is not below"),
        ({"NNODES": "2"}, {}, "need a rendezvous address"),
        ({"NNODES": "two"}, {}, "NNODES='two' is not a whole number"),
        ({}, {"nnodes": 2, "master_addr": "n0", "master_port": 70000}, "is not a TCP port"),
    ],
)
def test_bad_topology_is_a_usage_error(env: dict, flags: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_topology(env, **flags)


def _plan(nnodes: int = 1) -> Plan:
    return Plan(
        backend="trl",
        device="cpu",
        runtime="docker",
        image=image_tag("trl", "cpu"),
        image_available=True,
        algorithm="sft",
        requested_backend="auto",
        gpus=0,
        nnodes=nnodes,
        processes_per_node=1,
        reasons=[],
        warnings=[],
    )


def _spec(tmp_path: Path, topology: Topology, network: str | None = None) -> Any:
    recipe = load_recipe(TINY / "sft.yaml")
    paths = RunPaths(TINY / "sft.yaml", tmp_path / "run", tmp_path / "hf")
    return build_container_spec(
        _plan(topology.nnodes), recipe, paths, user="0:0", topology=topology, network=network
    )


def test_topology_enters_the_container_by_value(tmp_path: Path) -> None:
    spec = _spec(tmp_path, Topology(2, 1, "10.0.0.5", 29500))
    assert {k: spec.environment[k] for k in ("NNODES", "NODE_RANK", "MASTER_ADDR")} == {
        "NNODES": "2",
        "NODE_RANK": "1",
        "MASTER_ADDR": "10.0.0.5",
    }
    assert spec.environment["MASTER_PORT"] == "29500"
    assert not set(PASSTHROUGH_ENV) & {"NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"}
    # Several machines: host networking, so node 0's rendezvous port is reachable.
    assert spec.network == "host" and spec.name.endswith("-node1")


def test_named_network_gives_each_node_an_alias(tmp_path: Path) -> None:
    spec = _spec(tmp_path, Topology(2, 0, "aligntune-tiny-sft-node0", 29500), "aligntune-net")
    assert spec.network == "aligntune-net"
    assert spec.network_aliases == ("aligntune-tiny-sft-node0",)
    assert spec.describe()["network"] == "aligntune-net"


def test_a_one_node_job_with_a_rendezvous_host_uses_the_host_network(tmp_path: Path) -> None:
    topology = resolve_topology(
        {"SLURM_NNODES": "1", "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "n1"}
    )
    spec = _spec(tmp_path, topology)
    assert spec.network == "host" and spec.environment["MASTER_ADDR"] == "n1"


def test_one_node_keeps_the_default_network(tmp_path: Path) -> None:
    spec = _spec(tmp_path, Topology())
    assert spec.network is None and "NNODES" not in spec.environment


def _tiny_recipe(**distributed: Any) -> Any:
    return recipe_from_dict(
        {
            "algorithm": {"name": "sft"},
            "model": {"name_or_path": "./model"},
            "data": {"train": {"path": "./data/sft.jsonl"}},
            "distributed": distributed,
        },
        source="test",
        base_dir=TINY,
    )


def test_deepspeed_on_cpu_is_refused_at_plan_time() -> None:
    host = HostInfo(docker_available=True)
    recipe = _tiny_recipe(strategy="deepspeed", zero_stage=2)
    with pytest.raises(BackendUnavailableError, match="deepspeed needs CUDA GPUs"):
        select_backend(recipe, host)


def test_fsdp_on_cpu_plans_trl() -> None:
    recipe = _tiny_recipe(strategy="fsdp", processes_per_node=2)
    plan = select_backend(recipe, HostInfo(docker_available=True, nnodes=2))
    assert (plan.backend, plan.device, plan.processes_per_node, plan.nnodes) == ("trl", "cpu", 2, 2)


def test_the_root_failure_decides_the_exit_code_not_the_ranks_torchrun_killed() -> None:
    from types import SimpleNamespace

    from aligntune.runners.common.torchrun import failed_exit_code

    killed = SimpleNamespace(exitcode=-15, timestamp=100)
    crashed = SimpleNamespace(exitcode=70, timestamp=101)
    assert failed_exit_code({0: killed, 1: crashed}) == 70
    assert failed_exit_code({0: killed}) == 143
    assert failed_exit_code({1: SimpleNamespace(exitcode=4, timestamp=5), 0: crashed}) == 4


def test_every_worker_gets_the_launchers_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchrun's workers re-read the recipe: they need the same `--reference` paths."""
    from aligntune.runners.common import torchrun
    from aligntune.runners.trl.cli import main

    started: list[list[str]] = []
    monkeypatch.setattr(torchrun, "launch_workers", lambda g, m, args: started.append(args) or 0)
    for name in ("LOCAL_RANK", "WORLD_SIZE", "NNODES"):
        monkeypatch.delenv(name, raising=False)
    recipe = tmp_path / "two.yaml"
    recipe.write_text((TINY / "sft.yaml").read_text() + "distributed: {processes_per_node: 2}\n")
    reference = f"model.name_or_path={TINY / 'model'}"
    assert (
        main(["run", str(recipe), "--output", str(tmp_path / "run"), "--reference", reference]) == 0
    )
    assert started == [
        ["run", str(recipe), "--output", str(tmp_path / "run"), "--reference", reference]
    ]


SLURM = {"SLURM_NNODES": "3", "SLURM_NODEID": "2", "SLURM_JOB_NODELIST": "gpu[07-09]"}
POD = {
    "NNODES": "2",
    "JOB_COMPLETION_INDEX": "1",
    "HOSTNAME": "tiny-sft-1",
    "ALIGNTUNE_RENDEZVOUS_SERVICE": "tiny-sft",
}


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [
        ("node01", "node01"),
        ("gpu[07-09,01]", "gpu07"),
        ("a[3,1],b[1-2]", "a3"),
        ("rack[1-2]-n[05-06]", "rack1-n05"),
        ("n1,n2", "n1"),
        ("", None),
    ],
)
def test_first_host_of_a_slurm_hostlist(nodelist: str, first: str | None) -> None:
    assert first_host(nodelist) == first


def test_slurm_variables_give_the_topology_and_say_so() -> None:
    topology = resolve_topology(SLURM)
    assert topology == Topology(3, 2, "gpu07", 29500)
    assert topology.sources == {
        "NNODES": "SLURM_NNODES",
        "NODE_RANK": "SLURM_NODEID",
        "MASTER_ADDR": "first host of SLURM_JOB_NODELIST",
        "MASTER_PORT": "default",
    }
    assert "NODE_RANK from SLURM_NODEID" in topology.describe()


def test_an_indexed_job_pod_finds_index_zero_behind_its_service() -> None:
    topology = resolve_topology(POD)
    assert topology == Topology(2, 1, "tiny-sft-0.tiny-sft", 29500)
    assert topology.sources["NODE_RANK"] == "JOB_COMPLETION_INDEX"


def test_the_nnodes_family_wins_over_the_scheduler_and_flags_over_both() -> None:
    env = {**SLURM, "NODE_RANK": "1", "MASTER_ADDR": "login0"}
    topology = resolve_topology(env)
    assert topology == Topology(3, 1, "login0", 29500)
    assert topology.sources["NODE_RANK"] == "NODE_RANK"
    assert topology.sources["NNODES"] == "SLURM_NNODES"
    flagged = resolve_topology(env, node_rank=0, master_addr="n0")
    assert flagged == Topology(3, 0, "n0", 29500)
    assert flagged.sources["NODE_RANK"] == "--node-rank"


def test_kubernetes_index_wins_over_an_enclosing_slurm_job() -> None:
    assert resolve_topology({**SLURM, **POD}).node_rank == 1


def test_a_bad_scheduler_value_names_its_variable() -> None:
    with pytest.raises(UsageError, match="SLURM_NODEID='x' is not a whole number"):
        resolve_topology({**SLURM, "SLURM_NODEID": "x"})


def test_the_runner_adopts_the_scheduler_topology(capsys: pytest.CaptureFixture[str]) -> None:
    env = dict(SLURM)
    adopt_scheduler_topology(env)
    assert (env["NNODES"], env["NODE_RANK"], env["MASTER_ADDR"]) == ("3", "2", "gpu07")
    assert "NODE_RANK=2 from SLURM_NODEID" in capsys.readouterr().err
    group = worker_group(_tiny_recipe(), env)
    assert group is not None and (group.nnodes, group.node_rank) == (3, 2)


def test_a_torchrun_worker_adopts_nothing() -> None:
    env = {**SLURM, "LOCAL_RANK": "0", "WORLD_SIZE": "2"}
    adopt_scheduler_topology(env)
    assert "NNODES" not in env
