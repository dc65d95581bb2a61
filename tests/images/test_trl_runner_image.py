"""The trl cpu image for real: `aligntune run` trains SFT, DPO and GRPO in it; ownership, read-only
inputs, secrets, SIGTERM + resume (its Compose service: test_compose_docker.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from image_helpers import tiny_sft_copy

from aligntune.cli.image_sources import SOURCE_LABEL, source_sha256
from aligntune.core.version import VERSION

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny"
ALIGNTUNE = [sys.executable, "-m", "aligntune.cli.main"]

SECRET = "hf_marker_value_must_not_leak_7731"
RUN_FILES = ("plan.json", "recipe.resolved.yaml", "manifest.json", "events.jsonl", "status.json")


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for an `aligntune` subprocess: no debug tracebacks, no stray token."""
    env = {k: v for k, v in os.environ.items() if k not in ("ALIGNTUNE_DEBUG", "HF_TOKEN")}
    env.update(extra)
    return env


def docker_json(*args: str) -> object:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def assert_complete(run_dir: Path, uid: int) -> dict:
    """Every file of the run directory exists and belongs to `uid`; returns status.json."""
    for name in (*RUN_FILES, "container.log"):
        assert (run_dir / name).is_file(), f"{name} missing in {run_dir}"
    assert (run_dir / "final").is_dir() and any((run_dir / "final").iterdir())
    assert (run_dir / "checkpoints").is_dir()
    not_owned = [str(p) for p in run_dir.rglob("*") if p.stat().st_uid != uid]
    assert not_owned == [], f"not owned by uid {uid}: {not_owned[:5]}"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished"
    return status


def test_image_labels_entrypoint_and_user(trl_cpu_image: str) -> None:
    (info,) = docker_json("image", "inspect", trl_cpu_image)  # type: ignore[misc]
    config = info["Config"]
    lock = REPO / "images" / "trl-runner" / "requirements-cpu.lock"
    assert config["Labels"]["org.aligntune.backend"] == "trl"
    assert config["Labels"]["org.aligntune.device"] == "cpu"
    assert config["Labels"]["org.aligntune.version"] == VERSION
    assert (
        config["Labels"]["org.aligntune.lock-sha256"]
        == hashlib.sha256(lock.read_bytes()).hexdigest()
    )
    # What `plan` and `run` compare with this checkout to warn of a build of other sources.
    assert config["Labels"][SOURCE_LABEL] == source_sha256(REPO, "trl-runner")
    assert config["Entrypoint"] == ["python", "-m", "aligntune.runners.trl"]
    assert size_gb(trl_cpu_image) <= 1.8


def size_gb(image: str) -> float:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", image], capture_output=True, text=True
    )
    return int(out.stdout) / 1e9


def test_sft_run_complete_owned_read_only_and_no_secret_anywhere(
    trl_cpu_image: str, tmp_path: Path, aligntune: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    run_dir = tmp_path / "sft"
    env = cli_env(HF_HOME=str(tmp_path / "hf"), HF_TOKEN=SECRET)
    result = aligntune(
        "run", str(TINY / "sft.yaml"), "--output", str(run_dir), "--keep-container", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout and f"model: {run_dir / 'final'}" in result.stdout
    assert_complete(run_dir, os.getuid())
    plan = json.loads((run_dir / "plan.json").read_text())
    name = plan["launch"]["container"]["name"]
    try:
        (info,) = docker_json("container", "inspect", name)  # type: ignore[misc]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    mounts = {m["Destination"]: m["RW"] for m in info["Mounts"]}
    assert mounts["/aligntune/recipe"] is False and mounts["/aligntune/run"] is True
    assert info["HostConfig"]["Init"] is True
    assert info["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    env_with_secret = [e for e in info["Config"]["Env"] if SECRET in e]
    assert env_with_secret == [f"HF_TOKEN={SECRET}"], "the value may only travel as HF_TOKEN"
    elsewhere = json.dumps([info["Args"], info["Config"]["Cmd"], info["Config"]["Labels"]])
    assert SECRET not in elsewhere
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".yaml", ".log", ""):
            assert SECRET not in path.read_text(errors="replace"), f"secret in {path}"
    assert SECRET not in result.stdout + result.stderr


def test_data_mount_is_read_only_inside(trl_cpu_image: str, tmp_path: Path) -> None:
    """The exact mounts the launcher builds, with a command that tries to write the data."""
    from aligntune.cli.container import RunPaths, build_container_spec
    from aligntune.cli.launch import _client, run_arguments
    from aligntune.core.loader import load_recipe
    from aligntune.core.plan import Plan

    recipe = load_recipe(TINY / "sft.yaml")
    plan = Plan(
        backend="trl",
        device="cpu",
        runtime="docker",
        image=trl_cpu_image,
        image_available=True,
        algorithm="sft",
        requested_backend="auto",
        gpus=0,
        nnodes=1,
        processes_per_node=1,
        reasons=[],
        warnings=[],
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "hf").mkdir()
    paths = RunPaths(TINY / "sft.yaml", tmp_path / "run", tmp_path / "hf")
    spec = build_container_spec(plan, recipe, paths, user=f"{os.getuid()}:{os.getgid()}")
    arguments = run_arguments(spec, {})
    arguments.update(
        name=None,
        entrypoint=["python", "-c"],
        command=[
            "import errno\ntry:\n open('/aligntune/recipe/data/sft.jsonl', 'a')\n"
            "except OSError as e:\n print('write refused', errno.errorcode[e.errno])\n"
            "else:\n print('WRITABLE')\nopen('/aligntune/run/ok', 'w').write('x')"
        ],
    )
    output = _client().containers.run(**arguments, remove=True).decode()
    assert "write refused EROFS" in output
    assert (tmp_path / "run" / "ok").stat().st_uid == os.getuid()


def test_dpo_as_a_non_root_user(trl_cpu_image: str, tmp_path: Path) -> None:
    """The CLI itself runs as uid 4321 (in the socket's group); every file is theirs."""
    uid = 4321
    socket = Path("/var/run/docker.sock")
    if os.getuid() != 0 or not socket.exists() or shutil.which("setpriv") is None:
        pytest.skip("needs root, setpriv and the local docker socket to switch users")
    # Not under tmp_path: pytest's base folder is private to root (0700).
    home = Path(tempfile.mkdtemp(prefix="aligntune-uid-test-"))
    try:
        os.chown(home, uid, uid)
        env = cli_env(HOME=str(home), HF_HOME=str(home / "hf"))
        groups = f"--groups={socket.stat().st_gid}"
        as_user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", groups]
        command = [*ALIGNTUNE, "run", str(TINY / "dpo.yaml"), "--output", str(home / "dpo")]
        result = subprocess.run(
            [*as_user, *command], capture_output=True, text=True, env=env, cwd=home, timeout=600
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert_complete(home / "dpo", uid)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_grpo_run_reports_rewards(
    trl_cpu_image: str, tmp_path: Path, aligntune: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    result = aligntune("run", str(TINY / "grpo.yaml"), "--output", str(tmp_path / "grpo"), "-q")
    assert result.returncode == 0, result.stderr
    assert "reward" in result.stdout
    assert_complete(tmp_path / "grpo", os.getuid())


def test_sharegpt_mixed_with_messages_trains_in_the_image(
    trl_cpu_image: str, tmp_path: Path, aligntune: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """A ShareGPT file (published shape: `conversations` of `{from, value}`, a `system` column)
    mixed with the shipped messages file: each source is mounted, detected and trained."""
    recipe = tiny_sft_copy(tmp_path, "mixture.yaml", max_steps=3)
    pairs = (("France", "Paris."), ("Peru", "Lima."), ("Chile", "Santiago."))
    turns = [
        [{"from": "human", "value": f"Capital of {c}?"}, {"from": "gpt", "value": p}]
        for c, p in pairs
    ]
    rows = [{"conversations": t, "system": "Answer in one word."} for t in turns]
    shared = tmp_path / "shared"  # outside the recipe's folder: mounted on its own
    shared.mkdir()
    (shared / "sharegpt.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = yaml.safe_load(recipe.read_text())
    data["data"]["train"] = [
        {"path": str(shared / "sharegpt.jsonl"), "weight": 2},
        {"path": "./data/sft.jsonl", "max_samples": 6},
    ]
    recipe.write_text(yaml.safe_dump(data))
    checked = aligntune("validate", str(recipe))
    assert (
        f"data.train.0: {shared / 'sharegpt.jsonl'}: sharegpt (detected from line 1), 3 rows, "
        "6 used" in checked.stdout
    )
    assert (
        "data.train.1: " in checked.stdout
        and "messages (detected from line 1), 32 rows, 6 used" in checked.stdout
    )
    result = aligntune("run", str(recipe), "--output", str(tmp_path / "run"), "-q")
    assert result.returncode == 0, result.stderr
    assert_complete(tmp_path / "run", os.getuid())
    resolved = yaml.safe_load((tmp_path / "run" / "recipe.resolved.yaml").read_text())
    assert [s["path"] for s in resolved["data"]["train"]] == [
        str(shared / "sharegpt.jsonl"),
        str(recipe.parent / "data" / "sft.jsonl"),
    ]


def test_sigterm_saves_a_checkpoint_and_the_same_command_resumes(
    trl_cpu_image: str, tmp_path: Path
) -> None:
    # Enough steps to be interrupted, and no periodic checkpoint.
    recipe = tiny_sft_copy(tmp_path, "long.yaml", max_steps=120, save_steps=1000)
    run_dir = tmp_path / "long"
    command = [*ALIGNTUNE, "run", str(recipe), "--output", str(run_dir), "--quiet"]
    env = cli_env(HF_HOME=str(tmp_path / "hf"))
    launcher = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    events = run_dir / "events.jsonl"
    while time.monotonic() < deadline and '"log"' not in (
        events.read_text() if events.exists() else ""
    ):
        time.sleep(0.2)
    launcher.send_signal(signal.SIGTERM)
    out, err = launcher.communicate(timeout=180)
    assert launcher.returncode == 143, out + err
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted"
    assert (run_dir / status["checkpoint"]).is_dir()
    assert "resume with: aligntune run" in err
    stopped_at = status["step"]
    assert 0 < stopped_at < 120

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming at step {stopped_at}" in again.stdout
    assert_complete(run_dir, os.getuid())
    assert json.loads((run_dir / "status.json").read_text())["step"] == 120


def test_report_tensorboard_and_trackio_from_a_run_in_the_image(
    trl_cpu_image: str, tmp_path: Path, aligntune: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """The image has matplotlib, tensorboard and trackio: all three write into the run dir."""
    recipe = tiny_sft_copy(
        tmp_path, "tracked.yaml", max_steps=3, save_steps=3, report_to=["tensorboard", "trackio"]
    )
    recipe.write_text(
        recipe.read_text().replace("max_length: 64", "max_length: 64\n  eval_fraction: 0.25")
    )
    run_dir = tmp_path / "tracked"
    result = aligntune("run", str(recipe), "--output", str(run_dir), "-q")
    assert result.returncode == 0, result.stderr
    assert f"report: {run_dir / 'report.md'}" in result.stdout.splitlines()
    assert_complete(run_dir, os.getuid())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["image"] == trl_cpu_image and summary["steps"] == 3
    assert summary["metrics"]["eval_loss"]["last_step"] == 3  # evaluated at the end
    assert (run_dir / "plots" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "final" / "README.md").is_file() and (run_dir / "samples.jsonl").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "trackio").glob("*.db"))
