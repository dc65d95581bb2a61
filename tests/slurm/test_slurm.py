"""`aligntune launch slurm` on a real one-node Slurm cluster (conftest.py): the written sbatch
script, submitted, trains the tiny recipe with 2 processes that meet at the rendezvous Slurm's
variables give; a job stopped with SIGTERM saves a checkpoint, requeues itself and resumes.
The runner is the one installed here (--container none), and once the trl image
(--container docker). Apptainer is not installed here (Debian has no package): its script runs
once with `apptainer` spelled as `docker run` (APPTAINER below), which proves the script's own
part under a real Slurm (each node's task, the variables it passes by name, the mounts and the
runner's arguments are enough for the real image to train), not Apptainer itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from aligntune.core.backends import image_tag

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny"
ALIGNTUNE = [sys.executable, "-m", "aligntune.cli.main"]

pytestmark = pytest.mark.training


def two_process_recipe(folder: Path, steps: int, save_steps: int) -> Path:
    """The shipped tiny SFT recipe with `steps`, trained by 2 processes per node."""
    data = yaml.safe_load((TINY / "sft.yaml").read_text(encoding="utf-8"))
    data["training"].update(max_steps=steps, save_steps=save_steps, logging_steps=1)
    data["distributed"] = {"processes_per_node": 2}
    folder.mkdir()
    for name in ("model", "data"):
        (folder / name).symlink_to(TINY / name)
    path = folder / "sft.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def submit(
    recipe: Path, run_dir: Path, env: dict[str, str], cwd: Path, container: str = "none"
) -> str:
    """`aligntune launch slurm RECIPE --container CONTAINER --submit`; the job id it prints."""
    args = ["launch", "slurm", str(recipe), "--container", container, "--run-dir", str(run_dir)]
    args += ["--output", str(cwd / "job.sbatch"), "--submit"]
    result = subprocess.run(
        [*ALIGNTUNE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )
    print(f"$ aligntune {' '.join(args)}\n{result.stdout}{result.stderr}")
    assert result.returncode == 0
    found = re.search(r"^submitted job (\d+)$", result.stdout, re.MULTILINE)
    assert found, result.stdout
    return found.group(1)


def job_state(job: str, env: dict[str, str]) -> str:
    """The job's state as scontrol shows it (PENDING, RUNNING, COMPLETED, ...)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", job], capture_output=True, text=True, env=env, check=True
    ).stdout
    found = re.search(r"JobState=(\w+)", shown)
    assert found, shown
    return found.group(1)


def events(run_dir: Path) -> list[dict[str, Any]]:
    """Every event the run wrote so far."""
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def wait_until(what: str, done: Any, job: str, cwd: Path, timeout_s: float = 240) -> None:
    """Poll `done()`; on timeout fail with the job's output."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.5)
    log = cwd / f"slurm-{job}.out"
    pytest.fail(f"{what} within {timeout_s} s\n{log.read_text() if log.exists() else ''}")


def test_a_submitted_job_trains_with_the_rendezvous_from_slurm(
    slurm_cluster: dict[str, str], tmp_path: Path
) -> None:
    recipe = two_process_recipe(tmp_path / "recipe", steps=4, save_steps=4)
    run_dir = tmp_path / "run"
    job = submit(recipe, run_dir, slurm_cluster, tmp_path)
    wait_until("job finished", lambda: job_state(job, slurm_cluster) == "COMPLETED", job, tmp_path)
    log = (tmp_path / f"slurm-{job}.out").read_text()
    print(log)
    plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    (topology,) = [r for r in plan["reasons"] if r.startswith("topology:")]
    assert "NODE_RANK from SLURM_NODEID" in topology
    assert "MASTER_ADDR from first host of SLURM_JOB_NODELIST" in topology
    first_host = topology.split("rendezvous ")[1].split(":")[0]
    runner_log = (run_dir / "container.log").read_text(encoding="utf-8")
    # torchrun met there, not on a private port of its own
    port = 20000 + int(job) % 20000  # the job's own port, as the script sets it
    assert f"--master-addr={first_host} --master-port={port}" in runner_log
    found = events(run_dir)
    (start,) = [e for e in found if e["event"] == "start"]
    assert start["world_size"] == 2 and start["ddp_backend"] == "gloo"
    assert [e["step"] for e in found if e["event"] == "log"] == [1, 2, 3, 4]
    assert [e["status"] for e in found if e["event"] == "end"] == ["finished"]
    assert (run_dir / "final").is_dir()


def test_a_job_stopped_by_sigterm_requeues_and_resumes_to_the_end(
    slurm_cluster: dict[str, str], tmp_path: Path
) -> None:
    recipe = two_process_recipe(tmp_path / "recipe", steps=30, save_steps=30)
    run_dir = tmp_path / "run"
    job = submit(recipe, run_dir, slurm_cluster, tmp_path)
    wait_until(
        "3 steps logged",
        lambda: sum(e["event"] == "log" for e in events(run_dir)) >= 3,
        job,
        tmp_path,
    )
    subprocess.run(["scancel", "--signal=TERM", job], env=slurm_cluster, check=True)
    wait_until("job finished", lambda: job_state(job, slurm_cluster) == "COMPLETED", job, tmp_path)
    log = (tmp_path / f"slurm-{job}.out").read_text()
    print(log)
    assert f"requeueing job {job} to resume" in log
    found = events(run_dir)
    ends = [e for e in found if e["event"] == "end"]
    assert [e["status"] for e in ends] == ["interrupted", "finished"], ends
    assert ends[0]["signal"] == 15 and ends[0]["checkpoint"]
    starts = [e for e in found if e["event"] == "start"]
    assert len(starts) == 2, starts
    assert starts[1]["resumed_from"] == Path(ends[0]["checkpoint"]).name
    assert 3 <= starts[1]["step"] < 30
    logged = [e["step"] for e in found if e["event"] == "log"]
    assert logged == list(range(1, 31)), "each step logged once, none trained twice"


@pytest.fixture(scope="module")
def fresh_trl_image() -> str:
    """The trl cpu image rebuilt from this checkout (seconds when only runner code changed)."""
    build = subprocess.run(
        [*ALIGNTUNE, "images", "build", "trl-runner", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    return image_tag("trl", "cpu")


@pytest.mark.docker
def test_each_node_trains_in_the_image_as_aligntune_run_starts_it(
    slurm_cluster: dict[str, str], fresh_trl_image: str, tmp_path: Path
) -> None:
    recipe = two_process_recipe(tmp_path / "recipe", steps=3, save_steps=3)
    run_dir = tmp_path / "run"
    env = {**slurm_cluster, "HF_HOME": str(tmp_path / "hf")}
    job = submit(recipe, run_dir, env, tmp_path, container="docker")
    wait_until("job finished", lambda: job_state(job, env) == "COMPLETED", job, tmp_path)
    plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    assert plan["image"] == fresh_trl_image and plan["runtime"] == "docker"
    found = events(run_dir)
    (start,) = [e for e in found if e["event"] == "start"]
    assert start["world_size"] == 2
    assert [e["status"] for e in found if e["event"] == "end"] == ["finished"]
    assert (run_dir / "final").stat().st_uid == os.getuid()


APPTAINER = """#!/bin/bash
# apptainer, spelled as docker: `build` records the docker-daemon:// image it is asked for; `run`
# starts that image with the same binds, --env values and directory, the APPTAINERENV_ variables
# (and nothing else of this environment), as this user, on the host's network.
set -euo pipefail
case "$1" in
  build) echo "${4#docker-daemon://}" > "$3"; exit 0 ;;  # build --force FILE SOURCE
  run) shift ;;
  *) echo "this apptainer stand-in knows build and run, not $1" >&2; exit 2 ;;
esac
args=(run --rm --init --network host --user "$(id -u):$(id -g)")
while [[ $1 == --* ]]; do
  case "$1" in
    --bind) args+=(-v "$2"); shift 2 ;;
    --env) args+=(-e "$2"); shift 2 ;;
    --pwd) args+=(-w "$2"); shift 2 ;;
    --cleanenv|--contain) shift ;;
    *) echo "this apptainer stand-in does not know $1" >&2; exit 2 ;;
  esac
done
image=$(cat "$1"); shift
for name in $(compgen -e); do
  if [[ $name == APPTAINERENV_* ]]; then
    export "${name#APPTAINERENV_}=${!name}"
    args+=(-e "${name#APPTAINERENV_}")
  fi
done
exec docker "${args[@]}" "$image" "$@"
"""


@pytest.mark.docker
def test_the_apptainer_script_trains_in_the_image_on_a_real_slurm(
    slurm_cluster: dict[str, str], fresh_trl_image: str, tmp_path: Path
) -> None:
    recipe = two_process_recipe(tmp_path / "recipe", steps=3, save_steps=3)
    run_dir = tmp_path / "run"
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "apptainer").write_text(APPTAINER)
    (tools / "apptainer").chmod(0o755)
    path = f"{tools}{os.pathsep}{slurm_cluster['PATH']}"
    env = {**slurm_cluster, "PATH": path, "HF_HOME": str(tmp_path / "hf")}
    job = submit(recipe, run_dir, env, tmp_path, container="apptainer")
    wait_until("job finished", lambda: job_state(job, env) == "COMPLETED", job, tmp_path)
    assert (run_dir.parent / "trl-runner-0.1.0-cpu.sif").read_text() == f"{fresh_trl_image}\n"
    found = events(run_dir)
    (start,) = [e for e in found if e["event"] == "start"]
    assert start["world_size"] == 2 and start["ddp_backend"] == "gloo"
    assert [e["step"] for e in found if e["event"] == "log"] == [1, 2, 3]
    assert [e["status"] for e in found if e["event"] == "end"] == ["finished"]
    assert (run_dir / "final").stat().st_uid == os.getuid()
    # The runner found its place from Slurm's variables, passed into the image by name.
    log = (tmp_path / f"slurm-{job}.out").read_text()
    assert "NODE_RANK=0 from SLURM_NODEID" in log, log[-3000:]
