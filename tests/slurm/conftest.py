"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd, started from a
generated minimal slurm.conf (this machine as the only node, no cgroups, no accounting), with
their state, sockets and logs in a temporary folder. scripts/setup.sh installs the packages."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _slurm_conf(root: Path, node_line: str) -> str:
    host = socket.gethostname().split(".")[0]
    return "\n".join(
        [
            "ClusterName=aligntune-test",
            f"SlurmctldHost={host}",
            "SlurmUser=root",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            # cred_expire is also how long a requeued job waits to start again (default 120 s).
            f"AuthInfo=socket={root}/munge.socket,cred_expire=10",
            f"StateSaveLocation={root}/state",
            f"SlurmdSpoolDir={root}/spool",
            f"SlurmctldPidFile={root}/slurmctld.pid",
            f"SlurmdPidFile={root}/slurmd.pid",
            f"SlurmctldLogFile={root}/slurmctld.log",
            f"SlurmdLogFile={root}/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "ReturnToService=2",
            "JobRequeue=1",
            "SchedulerParameters=sched_interval=1",
            node_line + " State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _wait(what: str, ready: Callable[[], bool], logs: list[Path], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    shown = "\n".join(f"--- {log}\n{log.read_text() if log.exists() else '(none)'}" for log in logs)
    raise AssertionError(f"{what} did not come up in {timeout_s} s\n{shown}")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment (SLURM_CONF) in which sbatch, squeue and scancel reach the cluster."""
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    assert not missing, f"{missing} not installed: ALIGNTUNE_SETUP_WITH=slurm bash scripts/setup.sh"
    root = tmp_path_factory.mktemp("slurm")
    root.chmod(0o700)
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    node_line = subprocess.run(
        ["slurmd", "-C"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, node_line))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started: list[subprocess.Popen[bytes]] = []
    munge = [
        "munged", "--foreground", "--force", f"--socket={root}/munge.socket",
        f"--key-file={key}", f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
        f"--seed-file={root}/munged.seed",
    ]  # fmt: skip
    daemons = [munge, ["slurmctld", "-D", "-i", "-f", str(conf)], ["slurmd", "-D", "-f", str(conf)]]
    try:
        for argv in daemons:
            # Each daemon logs to its file too; the test output stays the tests'.
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            started.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, **quiet))
            time.sleep(1)
        logs = [root / name for name in ("munged.log", "slurmctld.log", "slurmd.log")]

        def node_idle() -> bool:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, check=False
            ).stdout
            return out.strip().startswith("idle")

        _wait("the Slurm node", node_idle, logs)
        yield env
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
