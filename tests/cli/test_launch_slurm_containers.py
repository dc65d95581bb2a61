"""`aligntune launch slurm --container apptainer|enroot`: the written script, run by bash as
Slurm would run it on two nodes, with small stand-ins for `srun` (each node's task in turn, with
its own SLURM_NODEID), `scontrol` and the container runtime, which record each command line and
what each container would receive by name. Neither runtime is installed here (Debian has no
package): what is checked is every word bash hands the runtime, not the runtime itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_launch_slurm import SHARED, TINY, launch, shared_tiny  # noqa: F401  (the fixture)

from aligntune.cli.mounts import hf_cache_path
from aligntune.cli.slurm_containers import RUNTIMES
from aligntune.core.plan import Plan

SECRET = "hf_secret-value-never-written"
JOB_ID = 4321
NODELIST = "node[1-2]"

SRUN = """#!/bin/bash
# srun on one machine: the --nodes=N tasks of a step in turn, each with its own SLURM_NODEID.
nodes=1
while [[ $1 == --* ]]; do [[ $1 == --nodes=* ]] && nodes=${1#--nodes=}; shift; done
status=0
for ((i = 0; i < nodes; i++)); do SLURM_NODEID=$i SLURM_NNODES=$nodes "$@" || status=$?; done
exit $status
"""
RUNTIME = """#!/bin/bash
# Records its arguments and what a container would receive by name; exits with $FAKE_EXIT.
record="$FAKE_LOG/$(basename "$0")-$1-node${SLURM_NODEID:-batch}"
printf '%s\\n' "$@" > "$record.argv"
env > "$record.env"
case "$1" in
  build) echo sif > "$3" ;;  # apptainer build --force FILE SOURCE
  import) echo sqsh > "$3" ;;  # enroot import --output FILE SOURCE
  run|start) exit "${FAKE_EXIT:-0}" ;;
esac
"""
SCONTROL = '#!/bin/bash\necho "$@" >> "$FAKE_LOG/scontrol"\n'


def _tools(folder: Path) -> Path:
    folder.mkdir()
    for name, text in [("srun", SRUN), ("scontrol", SCONTROL)] + [(r, RUNTIME) for r in RUNTIMES]:
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def write_script(tmp_path: Path, runtime: str, *extra: str) -> tuple[Path, Path]:
    """`aligntune launch slurm` for two nodes through `runtime`, with HF_TOKEN set; the script
    and the run directory."""
    run_dir = SHARED / f"runs-{runtime}" / "tiny-sft"
    script = tmp_path / f"{runtime}.sbatch"
    args = [str(TINY / "sft.yaml"), "--nodes", "2", "--container", runtime, *extra]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", SECRET)
        result = launch(*args, "--run-dir", str(run_dir), "--output", str(script), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    assert SECRET not in script.read_text()
    return script, run_dir


def run_job(script: Path, tmp_path: Path, exit_code: int = 0) -> tuple[int, Path]:
    """Run the script as the batch step of job JOB_ID; its exit code and the records."""
    log = tmp_path / "log"
    log.mkdir(exist_ok=True)
    env = {
        "PATH": f"{_tools(tmp_path / 'bin')}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SLURM_JOB_ID": str(JOB_ID),
        "SLURM_JOB_NODELIST": NODELIST,
        "HF_TOKEN": SECRET,
        "PYTHONPATH": "/somewhere/else",  # the node's own, never the image's
        "FAKE_LOG": str(log),
        "FAKE_EXIT": str(exit_code),
    }
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    print(done.stdout, done.stderr)
    return done.returncode, log


def argv(log: Path, name: str) -> list[str]:
    """The arguments one recorded command received."""
    return (log / f"{name}.argv").read_text().splitlines()


def received(log: Path, name: str) -> dict[str, str]:
    """The environment one recorded command ran in."""
    lines = (log / f"{name}.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def runner_arguments(run_dir: Path) -> list[str]:
    """What the runner is asked, as `aligntune run` asks it in the container."""
    return [
        "run", "/aligntune/recipe/sft.yaml", "--output", "/aligntune/run",
        "--reference", "model.name_or_path=/aligntune/recipe/model",
        "--reference", "data.train.path=/aligntune/recipe/data/sft.jsonl",
        "--host-path", f"model.name_or_path={TINY / 'model'}",
        "--host-path", f"data.train.path={TINY / 'data' / 'sft.jsonl'}",
        "--host-path", f"output.dir={run_dir}",
    ]  # fmt: skip


def test_apptainer_runs_the_image_on_each_node_with_the_runs_mounts(tmp_path: Path) -> None:
    script, run_dir = write_script(tmp_path, "apptainer")
    code, log = run_job(script, tmp_path)
    assert code == 0
    image = run_dir.parent / "trl-runner-0.1.0-cpu.sif"
    partial = f"{image}.partial"
    source = "docker-daemon://aligntune/trl-runner:0.1.0-cpu"
    assert argv(log, "apptainer-build-nodebatch") == ["build", "--force", partial, source]
    assert image.read_text() == "sif\n" and run_dir.is_dir()
    hf_cache = hf_cache_path()
    for node in (0, 1):
        assert argv(log, f"apptainer-run-node{node}") == [
            "run", "--cleanenv", "--contain",
            "--bind", f"{TINY}:/aligntune/recipe:ro",
            "--bind", f"{run_dir}:/aligntune/run",
            "--bind", f"{hf_cache}:/aligntune/hf-cache",
            "--env", "HF_HOME=/aligntune/hf-cache",
            "--pwd", "/aligntune/run",
            str(image), *runner_arguments(run_dir),
        ]  # fmt: skip
        env = received(log, f"apptainer-run-node{node}")
        prefix = "APPTAINERENV_"
        passed = {k.removeprefix(prefix): v for k, v in env.items() if k.startswith(prefix)}
        assert passed == {
            "SLURM_NNODES": "2",
            "SLURM_NODEID": str(node),
            "SLURM_JOB_NODELIST": NODELIST,
            "MASTER_PORT": str(20000 + JOB_ID % 20000),
            "HF_TOKEN": SECRET,
        }
    assert not (log / "scontrol").exists()


def test_enroot_unpacks_runs_and_removes_the_image_on_each_node(tmp_path: Path) -> None:
    script, run_dir = write_script(tmp_path, "enroot", "--gpus-per-node", "2")
    code, log = run_job(script, tmp_path)
    assert code == 0
    image = run_dir.parent / "trl-runner-0.1.0-cuda.sqsh"
    source = "dockerd://aligntune/trl-runner:0.1.0-cuda"
    assert argv(log, "enroot-import-nodebatch") == [
        "import",
        "--output",
        f"{image}.partial",
        source,
    ]
    container = f"aligntune-{JOB_ID}"
    hf_cache = hf_cache_path()
    for node in (0, 1):
        assert argv(log, f"enroot-create-node{node}") == [
            "create",
            "--force",
            "--name",
            container,
            str(image),
        ]
        # No --root: the calling user stays itself inside.
        assert argv(log, f"enroot-start-node{node}") == [
            "start", "--rw",
            "--env", "SLURM_NNODES", "--env", "SLURM_NODEID", "--env", "SLURM_JOB_NODELIST",
            "--env", "MASTER_PORT", "--env", "HF_TOKEN",
            "--mount", f"{TINY}:/aligntune/recipe:none:x-create=auto,bind,ro",
            "--mount", f"{run_dir}:/aligntune/run:none:x-create=auto,bind",
            "--mount", f"{hf_cache}:/aligntune/hf-cache:none:x-create=auto,bind",
            "--env", "HF_HOME=/aligntune/hf-cache",
            "--env", "NVIDIA_VISIBLE_DEVICES=all",
            "--env", "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
            container, *runner_arguments(run_dir),
        ]  # fmt: skip
        # enroot reads each value passed by name from the task's own environment.
        env = received(log, f"enroot-start-node{node}")
        assert (env["SLURM_NODEID"], env["HF_TOKEN"]) == (str(node), SECRET)
        assert argv(log, f"enroot-remove-node{node}") == ["remove", "--force", container]


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_a_run_stopped_with_a_checkpoint_requeues_the_job(runtime: str, tmp_path: Path) -> None:
    script, _ = write_script(tmp_path, runtime)
    code, log = run_job(script, tmp_path, exit_code=143)
    assert code == 143
    assert (log / "scontrol").read_text() == f"requeue {JOB_ID}\n"


def _released(image: str) -> Plan:
    return Plan(
        backend="trl", device="cuda", runtime="docker", image=image, image_available=False,
        image_source="release", image_pull=True, algorithm="sft", requested_backend="auto",
        gpus=1, nnodes=1, processes_per_node=1, reasons=[], warnings=[],
    )  # fmt: skip


def test_a_released_image_is_pulled_by_digest_from_its_registry() -> None:
    plan = _released("registry.example:5000/aligntune/trl-runner@sha256:" + "ab" * 32)
    assert RUNTIMES["apptainer"].source(plan) == f"docker://{plan.image}"
    # enroot's URI puts '#' between the registry and the repository.
    assert RUNTIMES["enroot"].source(plan) == (
        "docker://registry.example:5000#aligntune/trl-runner@sha256:" + "ab" * 32
    )


@pytest.mark.parametrize(
    ("runtime", "run_dir", "shown"),
    [("apptainer", "runs,v2", "','"), ("enroot", "my runs", "' '"), ("enroot", "a:b", "':'")],
)
def test_a_path_the_runtime_cannot_mount_is_refused(
    runtime: str, run_dir: str, shown: str, tmp_path: Path
) -> None:
    target = SHARED / run_dir
    args = ["--container", runtime, "--run-dir", str(target), "--output", str(tmp_path / "x")]
    result = launch(str(TINY / "sft.yaml"), *args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"error: --container {runtime}: {target} contains {shown}, which {runtime}'s mount "
        "option cannot carry in a path; it would be mounted at /aligntune/run"
    )
    assert list(tmp_path.iterdir()) == [] and not target.exists()
