"""`aligntune launch slurm` as a user runs it: the sbatch script it writes, and the one-line
refusals (with their exit codes) of what cannot work on a cluster, writing nothing. The real
cluster is in tests/slurm."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED = Path.home() / ".cache" / "aligntune-tests" / f"launch-slurm-{os.getpid()}"
"""Not under /tmp (where a checkout, and so the shipped tiny recipe, may well lie), so several
nodes may use what is in it: the tiny recipe is copied there for these tests."""
TINY = SHARED / "tiny"
ALIGNTUNE = [sys.executable, "-m", "aligntune.cli.main"]
SHARED_RUN_DIR = str(SHARED / "runs" / "launch-slurm-test")
"""`launch` only checks the run directory, never creates it."""


@pytest.fixture(autouse=True, scope="module")
def shared_tiny() -> Iterator[Path]:
    """The tiny recipe folder copied to SHARED for this module's tests, removed after."""
    assert not str(SHARED).startswith(("/tmp/", "/var/tmp/")), f"HOME is node-local: {SHARED}"
    shutil.copytree(REPO / "recipes" / "tiny", TINY, dirs_exist_ok=True)
    yield TINY
    shutil.rmtree(SHARED, ignore_errors=True)


def launch(*args: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ALIGNTUNE_DEBUG"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [*ALIGNTUNE, "launch", "slurm", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_the_script_runs_one_aligntune_run_per_node_with_requeue(tmp_path: Path) -> None:
    script = tmp_path / "job.sbatch"
    args = [str(TINY / "sft.yaml"), "--nodes", "2", "--gpus-per-node", "4", "--partition", "gpu"]
    args += ["--time", "4:00:00", "--run-dir", SHARED_RUN_DIR, "--output", str(script)]
    result = launch(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"wrote {script} (2 node(s), trl on cuda, container docker, run directory "
        f"{SHARED_RUN_DIR})",
        "warning: the recipe trains 1 process(es) per node, each on one GPU; set "
        "distributed.processes_per_node: 4 to use all 4",
        f"submit it: sbatch {script}",
    ]
    text = script.read_text()
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH --job-name=aligntune-tiny-sft",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=4:00:00",
        "#SBATCH --signal=TERM@180",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
    ]
    assert f"RUN_DIR={SHARED_RUN_DIR}\n" in text
    assert "export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))\n" in text
    # Unsloth is one machine only: auto picks TRL and the script pins it for every node.
    node = f'aligntune.cli.main run {TINY / "sft.yaml"} --output "$RUN_DIR" --backend trl --quiet'
    assert node in text and "--runtime local" not in text
    assert "if [[ $status -eq 143 ]]; then" in text and 'scontrol requeue "$SLURM_JOB_ID"' in text
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0


def test_each_node_hands_docker_the_gpus_slurm_gave_that_node(tmp_path: Path) -> None:
    script = tmp_path / "job.sbatch"
    args = [str(TINY / "sft.yaml"), "--nodes", "2", "--gpus-per-node", "2"]
    result = launch(*args, "--run-dir", SHARED_RUN_DIR, "--output", str(script), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # Run the script as the batch step of a two-node job: srun starts each node's task in turn
    # with that node's own SLURM_STEP_GPUS, and the aligntune on the node records its arguments.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        "#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\n"
        'SLURM_NODEID=0 SLURM_STEP_GPUS=0,1 "$@" && SLURM_NODEID=1 SLURM_STEP_GPUS=2,3 "$@"\n'
    )
    (bin_dir / "aligntune-on-node").write_text(
        '#!/bin/bash\necho "$SLURM_NODEID: ${*: -2}" >> "$RECORD"\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    text = script.read_text().replace(sys.executable, str(bin_dir / "aligntune-on-node"))
    script.write_text(text)
    record = tmp_path / "record"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RECORD": str(record), "SLURM_JOB_ID": "7"}
    # The batch step's SLURM_JOB_GPUS names the first node's GPUs only: never handed on.
    env["SLURM_JOB_GPUS"] = "0,1"
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert record.read_text().splitlines() == ["0: --gpus device=0,1", "1: --gpus device=2,3"]


def test_container_none_runs_the_runner_installed_on_the_node(tmp_path: Path) -> None:
    result = launch(str(TINY / "sft.yaml"), "--container", "none", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "tiny-sft.sbatch").read_text()
    assert "--quiet --runtime local" in text and "SLURM_JOB_GPUS" not in text
    assert f"RUN_DIR={tmp_path / 'runs' / 'tiny-sft'}\n" in text


def _tmp_recipe(tmp_path: Path) -> Path:
    data = yaml.safe_load((TINY / "sft.yaml").read_text())
    data["model"]["name_or_path"] = str(TINY / "model")
    (tmp_path / "sft.jsonl").write_bytes((TINY / "data" / "sft.jsonl").read_bytes())
    data["data"]["train"]["path"] = str(tmp_path / "sft.jsonl")
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--backend", "unsloth", "--nodes", "2", "--run-dir", SHARED_RUN_DIR],
            3,
            "Unsloth runs on one machine only",
        ),
        (["--nodes", "2", "--run-dir", "/tmp/run"], 1, "the run directory: /tmp/run is under /tmp"),
        (["--nodes", "0"], 2, "--nodes 0: at least 1"),
        (["--time", "2"], 2, "--time 2: the run is asked to save and stop 180 s before"),
        (["--time", "soon"], 2, "--time 'soon': use minutes"),
        (
            ["--container", "podman"],
            2,
            "--container 'podman': use one of docker, apptainer, enroot, none",
        ),
        (
            ["--container", "none", "--gpus-per-node", "1"],
            3,
            "the runner here has a CPU-only torch",
        ),
    ],
)
def test_what_cannot_work_is_refused_in_one_line(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = launch(str(TINY / "sft.yaml"), *args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert result.stderr.splitlines()[0].startswith("error: ")
    assert message in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_data_under_tmp_is_refused_for_several_nodes(tmp_path: Path) -> None:
    recipe = _tmp_recipe(tmp_path)
    result = launch(str(recipe), "--nodes", "2", "--run-dir", SHARED_RUN_DIR, cwd=tmp_path)
    assert result.returncode == 1
    assert f"data.train.path: {tmp_path / 'sft.jsonl'} is under /tmp" in result.stderr
    assert launch(str(recipe), "--run-dir", SHARED_RUN_DIR, cwd=tmp_path).returncode == 0


def test_submit_without_slurm_says_where_to_submit(tmp_path: Path) -> None:
    bare = os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if p and not (Path(p) / "sbatch").exists()
    )
    result = launch(str(TINY / "sft.yaml"), "--submit", cwd=tmp_path, path=bare)
    assert result.returncode == 3
    assert "error: sbatch is not on PATH: this machine is not a Slurm submit host" in result.stderr
    assert (tmp_path / "tiny-sft.sbatch").exists()


def test_a_written_file_is_never_lost(tmp_path: Path) -> None:
    """The recipe is never overwritten; an existing script only with --force; a folder or a
    missing folder as --output, and a flag that would add #SBATCH lines, are one line each."""
    recipe = tmp_path / "sft.yaml"
    recipe.write_text((TINY / "sft.yaml").read_text().replace("./", f"{TINY}/"))
    original = recipe.read_text()
    base = [str(recipe), "--container", "none"]
    refused = {
        "is the recipe itself": [*base, "--output", str(recipe), "--force"],
        "is a folder": [*base, "--output", str(tmp_path)],
        "does not exist": [*base, "--output", str(tmp_path / "nodir" / "x.sbatch")],
        "no spaces or line breaks": [*base, "--partition", "gpu\n#SBATCH --uid=0"],
    }
    for message, args in refused.items():
        result = launch(*args, cwd=tmp_path)
        assert result.returncode in (1, 2) and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert recipe.read_text() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft.yaml"]

    script = tmp_path / "job.sbatch"
    script.write_text("my own script\n")
    again = launch(*base, "--output", str(script), cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert script.read_text() == "my own script\n"
    forced = launch(*base, "--output", str(script), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert script.read_text().startswith("#!")
