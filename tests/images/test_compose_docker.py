"""compose.yaml's services for real, brought up and down by pytest-docker's `docker_services`: the
trl-runner and unsloth-runner-cpu services each train a recipe of the user's folder to the end
into the user's output folder, as the user; on a host without an NVIDIA driver, a cuda service
stops before Docker asks for a GPU: one line names the check that failed, whose log names the CPU
service to use."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from image_helpers import tiny_sft_copy

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
USER = f"{os.getuid()}:{os.getgid()}"
# The recipe each service trains (a copy of the tiny folder; SFT shortened for Unsloth's CPU mode)
# and the run directory it leaves: runs/<recipe name>.
TRAINS = {
    "trl-runner": ("grpo.yaml", "tiny-grpo"),
    "unsloth-runner-cpu": ("short-sft.yaml", "tiny-sft"),
}


@pytest.fixture(scope="session")
def compose_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The user's folders: a recipe folder, an (existing) output folder and a HF cache."""
    root = tmp_path_factory.mktemp("compose")
    recipe = tiny_sft_copy(root, "short-sft.yaml", max_steps=4, save_steps=2)
    folders = {"recipes": recipe.parent, "runs": root / "runs", "hf": root / "hf"}
    folders["runs"].mkdir()
    folders["hf"].mkdir()
    return folders


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(REPO / "compose.yaml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"aligntune-test-{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup(
    trl_cpu_image: str, unsloth_cpu_image: str, compose_folders: dict[str, Path]
) -> list[str]:
    """One `up` per service, with the variables a user sets (in an env file): each must exit 0."""
    commands = []
    for service, (recipe, _) in TRAINS.items():
        env_file = compose_folders["runs"].parent / f"{service}.env"
        env_file.write_text(
            f"ALIGNTUNE_RECIPE_DIR={compose_folders['recipes']}\n"
            f"ALIGNTUNE_DATA_DIR={compose_folders['recipes'] / 'data'}\n"
            f"ALIGNTUNE_RECIPE={recipe}\n"
            f"ALIGNTUNE_OUTPUT_DIR={compose_folders['runs']}\n"
            f"ALIGNTUNE_USER={USER}\n"
            f"HF_HOME={compose_folders['hf']}\n"
        )
        up = f"up --no-build --exit-code-from {service} {service}"
        commands.append(f'--env-file "{env_file}" {up}')
    return commands


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    # `down` acts on the active profiles only: name the one unsloth-runner-cpu is in.
    return ["--profile unsloth down --remove-orphans"]


@pytest.mark.parametrize("service", TRAINS)
def test_service_trains_the_recipe_to_the_end_as_the_user(
    service: str, docker_services: object, compose_folders: dict[str, Path]
) -> None:
    run_dir = compose_folders["runs"] / TRAINS[service][1]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished"
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events if e["event"] == "end"] == ["finished"]
    assert [e["step"] for e in events if e["event"] == "log"][-1] == status["step"]
    assert (run_dir / "final").is_dir() and any((run_dir / "final").iterdir())
    not_owned = [str(p) for p in run_dir.rglob("*") if p.stat().st_uid != os.getuid()]
    assert not_owned == [], f"not owned by {USER}: {not_owned[:5]}"


@pytest.mark.parametrize(
    ("service", "instead"),
    [("unsloth-runner", "unsloth-runner-cpu"), ("trl-runner-cuda", "trl-runner")],
)
def test_cuda_service_without_a_gpu_stops_with_one_message(
    service: str, instead: str, trl_cuda_image: str, unsloth_cuda_image: str, tmp_path: Path
) -> None:
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this host has an NVIDIA driver: the check passes here")
    project = f"aligntune-nogpu-{os.getpid()}"
    env = {**os.environ, "ALIGNTUNE_OUTPUT_DIR": str(tmp_path / "runs"), "HF_HOME": str(tmp_path)}
    compose = ["docker", "compose", "-p", project]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*compose, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )
        print(f"$ docker compose {' '.join(args)}\n{done.stdout}{done.stderr}")
        return done

    try:
        up = run("up", "--no-build", service)
        check = f"{service}-needs-an-nvidia-gpu"
        logs = run("logs", "--no-log-prefix", check)
    finally:
        run("down")
    assert up.returncode != 0
    assert f'service "{check}" didn\'t complete successfully: exit 3' in up.stderr
    assert "could not select device driver" not in up.stdout + up.stderr
    assert (
        logs.stdout.split()
        == (
            f"error: {service} needs an NVIDIA GPU, and this Docker host has no NVIDIA driver "
            f"(no /dev/nvidiactl). Without a GPU: docker compose up {instead}"
        ).split()
    )
    assert not (tmp_path / "runs").exists(), "no training container was started"
