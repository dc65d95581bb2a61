"""DDP for real on CPU (gloo): 2 local processes, 2 in one container, 2 containers as 2 nodes.

Every run is the shipped tiny recipe with a few steps. Rank 0 alone writes the run directory,
so each step is logged once; the start event shows each rank's first-batch rows (its shard).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from aligntune.core.backends import image_tag

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny"
ALIGNTUNE = [sys.executable, "-m", "aligntune.cli.main"]
TRL_CPU_IMAGE = image_tag("trl", "cpu")


def tiny_recipe(folder: Path, algorithm: str, steps: int, **distributed: Any) -> Path:
    """The shipped tiny recipe, next to its model and data, with `steps` and `distributed`."""
    data = yaml.safe_load((TINY / f"{algorithm}.yaml").read_text(encoding="utf-8"))
    data["training"].update(max_steps=steps, save_steps=steps, logging_steps=1)
    data["distributed"] = distributed
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model", "data"):
        if not (folder / name).exists():
            (folder / name).symlink_to(TINY / name)
    path = folder / f"{algorithm}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Any:
    """`aligntune ...` as a user runs it; output shown when a test fails."""
    result = subprocess.run(
        [*ALIGNTUNE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )
    print(f"$ aligntune {' '.join(args)}\n{result.stdout}\n{result.stderr}")
    return result


def events(run_dir: Path) -> list[dict[str, Any]]:
    """Every event the run wrote."""
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def sigterm_after_first_step(recipe: Path, run_dir: Path) -> int:
    """Start the runner on `recipe`, SIGTERM it once a step is logged; its exit code."""
    command = [sys.executable, "-m", "aligntune.runners.trl", "run", str(recipe)]
    process = subprocess.Popen(
        [*command, "--output", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        e["event"] == "log"
        for e in (events(run_dir) if (run_dir / "events.jsonl").exists() else [])
    ):
        time.sleep(0.2)
    process.terminate()
    output, _ = process.communicate(timeout=150)
    print(output.decode(errors="replace")[-3000:])
    return process.returncode


def assert_one_distributed_run(run_dir: Path, steps: int, world_size: int = 2) -> None:
    """Finished, one final/, a log event per step (no rank's duplicates), distinct shards."""
    found = events(run_dir)
    (start,) = [e for e in found if e["event"] == "start"]
    assert start["world_size"] == world_size and start["ddp_backend"] == "gloo"
    shards = start["first_batch_rows"]
    assert len(shards) == world_size and all(shards)
    assert not set(shards[0]) & set(shards[1]), f"ranks 0 and 1 got the same rows: {shards}"
    logged = [e["step"] for e in found if e["event"] == "log"]
    assert logged == list(range(1, steps + 1))
    assert [e["status"] for e in found if e["event"] == "end"] == ["finished"]
    assert (run_dir / "final").is_dir() and not (run_dir / ".final.tmp").exists()
    status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    assert status["status"] == "finished" and status["step"] == steps


@pytest.mark.training
@pytest.mark.parametrize(("algorithm", "steps"), [("sft", 4), ("dpo", 3)])
def test_two_local_processes_train_one_run(tmp_path: Path, algorithm: str, steps: int) -> None:
    recipe = tiny_recipe(
        tmp_path / "recipe", algorithm, steps, strategy="ddp", processes_per_node=2
    )
    run_dir = tmp_path / "run"
    result = cli("run", str(recipe), "--runtime", "local", "-q", "--output", str(run_dir))
    assert result.returncode == 0
    assert_one_distributed_run(run_dir, steps)
    assert "(world size 2): torchrun" in (run_dir / "container.log").read_text(encoding="utf-8")
    # Rank 0 alone answers the samples and draws the report (no rank's duplicates).
    samples = (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["model"] for line in samples) == ["base"] * 3 + ["trained"] * 3
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["steps"] == steps and summary["attempts"] == 1


@pytest.mark.training
def test_sigterm_stops_every_rank_with_one_checkpoint(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path / "recipe", "sft", 2000, strategy="ddp", processes_per_node=2)
    run_dir = tmp_path / "run"
    assert sigterm_after_first_step(recipe, run_dir) == 143
    (end,) = [e for e in events(run_dir) if e["event"] == "end"]
    assert end["status"] == "interrupted" and end["checkpoint"]
    step = int(end["checkpoint"].rsplit("-", 1)[1])
    checkpoint = run_dir / end["checkpoint"]
    # Both ranks saved their part of the same step before either stopped.
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {
        "rng_state_0.pth",
        "rng_state_1.pth",
    }
    assert json.loads((checkpoint / "aligntune_checkpoint.json").read_text())["step"] == step
    assert not list((run_dir / "checkpoints" / ".staging").glob("checkpoint-*"))


@pytest.mark.training
def test_a_stopped_two_process_run_resumes_to_the_end(tmp_path: Path) -> None:
    steps = 150
    recipe = tiny_recipe(tmp_path / "recipe", "sft", steps, strategy="ddp", processes_per_node=2)
    run_dir = tmp_path / "run"
    assert sigterm_after_first_step(recipe, run_dir) == 143
    (stopped,) = [e for e in events(run_dir) if e["event"] == "end"]
    stopped_at = int(stopped["checkpoint"].rsplit("-", 1)[1])
    assert stopped_at < steps

    resumed = cli("run", str(recipe), "--runtime", "local", "-q", "--output", str(run_dir))
    assert resumed.returncode == 0
    starts = [e for e in events(run_dir) if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["step"] == stopped_at
    assert starts[1]["world_size"] == 2
    logged = [e["step"] for e in events(run_dir) if e["event"] == "log"]
    assert max(logged) == steps and stopped_at + 1 in logged
    assert [e["status"] for e in events(run_dir) if e["event"] == "end"][-1] == "finished"
    assert (run_dir / "final").is_dir()


@pytest.mark.training
def test_fsdp_trains_on_cpu(tmp_path: Path) -> None:
    recipe_path = tiny_recipe(tmp_path / "recipe", "sft", 3, strategy="fsdp", processes_per_node=2)
    data = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    data["model"]["peft"] = {"method": "full"}  # FSDP shards the full model
    data["training"]["learning_rate"] = 1e-4
    recipe_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    run_dir = tmp_path / "run"
    result = cli("run", str(recipe_path), "--runtime", "local", "-q", "--output", str(run_dir))
    assert result.returncode == 0
    assert_one_distributed_run(run_dir, 3)
    assert (run_dir / "final" / "model.safetensors").is_file()
    # No rank holds the whole model under FSDP: no samples, but the report all the same.
    assert not (run_dir / "samples.jsonl").exists() and (run_dir / "report.md").is_file()


def test_node_rank_beyond_the_nodes_is_refused_at_once(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path / "recipe", "sft", 2)
    started = time.monotonic()
    result = cli(
        "run", str(recipe), "--runtime", "local", "--nnodes", "2", "--node-rank", "2",
        "--master-addr", "127.0.0.1", "--output", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "node rank 2 is not below the number of nodes 2" in result.stderr
    assert time.monotonic() - started < 30 and not (tmp_path / "run").exists()


@pytest.mark.training
def test_unreachable_rendezvous_fails_within_its_timeout(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path / "recipe", "sft", 2)
    env = {"ALIGNTUNE_RDZV_TIMEOUT": "5"}
    started = time.monotonic()
    result = cli(
        "run", str(recipe), "--runtime", "local", "-q", "--nnodes", "2", "--node-rank", "1",
        "--master-addr", "127.0.0.1", "--master-port", "29431", "--output", str(tmp_path / "run"),
        env=env, timeout=180,
    )  # fmt: skip
    took = time.monotonic() - started
    shown = result.stdout + result.stderr
    assert result.returncode == 3, shown[-2000:]
    assert "the rendezvous at 127.0.0.1:29431 failed for node 1 of 2" in result.stderr
    assert took < 120
    assert not (tmp_path / "run").exists(), "a refused attempt leaves no run directory"


# --- containers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_trl_image() -> str:
    """The trl cpu image rebuilt from this checkout (seconds when only runner code changed)."""
    build = subprocess.run(
        [*ALIGNTUNE, "images", "build", "trl-runner", "--device", "cpu"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    return TRL_CPU_IMAGE


@pytest.mark.docker
@pytest.mark.training
def test_two_processes_in_one_container(fresh_trl_image: str, tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path / "recipe", "sft", 4, strategy="ddp", processes_per_node=2)
    run_dir = tmp_path / "run"
    result = cli(
        "run", str(recipe), "-q", "--output", str(run_dir), env={"HF_HOME": str(tmp_path / "hf")}
    )
    assert result.returncode == 0
    assert_one_distributed_run(run_dir, 4)
    assert (run_dir / "final").stat().st_uid == os.getuid()


@pytest.mark.docker
@pytest.mark.training
def test_two_containers_train_as_two_nodes(fresh_trl_image: str, tmp_path: Path) -> None:
    outputs = tmp_path / "runs"
    outputs.mkdir()
    recipe_dir = tmp_path / "recipe"
    tiny_recipe(recipe_dir, "sft", 4)
    for name in ("model", "data"):  # a bind mount cannot follow a symlink out of its folder
        (recipe_dir / name).unlink()
        subprocess.run(["cp", "-r", str(TINY / name), str(recipe_dir / name)], check=True)
    env = {
        **os.environ,
        "ALIGNTUNE_RECIPE_DIR": str(recipe_dir),
        "ALIGNTUNE_DATA_DIR": str(recipe_dir / "data"),
        "ALIGNTUNE_OUTPUT_DIR": str(outputs),
        "ALIGNTUNE_USER": f"{os.getuid()}:{os.getgid()}",
        "HF_HOME": str(tmp_path / "hf"),
        "ALIGNTUNE_RDZV_TIMEOUT": "120",
        "COMPOSE_PROJECT_NAME": f"aligntune-mn-{os.getpid()}",
    }
    compose = ["docker", "compose", "-f", "compose.multinode.yaml"]
    try:
        up = subprocess.run(
            [*compose, "up", "--no-build", "--abort-on-container-failure"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        print(up.stdout[-4000:], up.stderr[-2000:])
        codes = subprocess.run(
            [*compose, "ps", "-a", "--format", "{{.Service}} {{.ExitCode}}"],
            cwd=REPO, env=env, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
    finally:
        subprocess.run(
            [*compose, "down", "--remove-orphans"], cwd=REPO, env=env, capture_output=True
        )
    assert dict(zip(codes[::2], codes[1::2], strict=True)) == {"node0": "0", "node1": "0"}
    assert_one_distributed_run(outputs / "tiny-sft", 4)
