"""Tiny real runs leave a report: summary, metrics.csv, the algorithm's plots, samples before and
after, the model card, evaluation at the end, and tensorboard and trackio files in the run dir."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from trl_helpers import make_run, read_events

from aligntune.core.report import metric_rows

pytestmark = pytest.mark.training

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRACKED = {"report_to": ["tensorboard", "trackio"]}


def assert_pngs(run_dir: Path, names: set[str]) -> None:
    """Each chart is a real PNG of the report's size; no other chart was drawn."""
    plots = {p.stem: p for p in (run_dir / "plots").glob("*.png")}
    assert set(plots) == names
    for path in plots.values():
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
        assert (int.from_bytes(data[16:20]), int.from_bytes(data[20:24])) == (700, 400)


def assert_report(run_dir: Path, algorithm: str, steps: int) -> dict:
    """summary.json, metrics.csv (a row per logged step), report.md and final/README.md agree
    with the events; returns the summary."""
    events = read_events(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["algorithm"] == algorithm
    assert summary["steps"] == steps and summary["attempts"] == 1
    assert summary["versions"]["trl"] == "1.12.0"
    assert 0 < summary["time_to_first_step_s"] < summary["wall_time_s"]
    assert summary["samples_per_second"] > 0 and summary["tokens_per_second"] > 0
    assert summary["peak_rss_mb"] > 100 and summary["peak_gpu_memory_mb"] is None
    logged = sorted({e["step"] for e in events if e["event"] in ("log", "eval")})
    with (run_dir / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == logged
    assert float(rows[-1]["loss"]) == metric_rows(events)[logged[-1]]["loss"]
    card = (run_dir / "final" / "README.md").read_text()
    assert "AutoPeftModelForCausalLM.from_pretrained" in card and "## Recipe (resolved)" in card
    assert "(../plots/loss.png)" in card
    return summary


def assert_samples(run_dir: Path, count: int) -> list[dict]:
    """Each prompt answered by the base model (step 0) and by the trained model."""
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    base = [s for s in samples if s["model"] == "base"]
    trained = [s for s in samples if s["model"] == "trained"]
    assert len(base) == len(trained) == count
    assert [s["prompt"] for s in base] == [s["prompt"] for s in trained]
    assert all(s["step"] == 0 for s in base) and all(isinstance(s["completion"], str) for s in base)
    return samples


def test_sft_run_reports_evaluates_samples_and_fills_both_trackers(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe(
        "sft",
        data={"eval_fraction": 0.25},
        training={"max_steps": 4, "save_steps": 4, "eval_steps": 3, **TRACKED},
        samples={"count": 2, "max_new_tokens": 4},
    )
    run_dir = tmp_path / "sft"
    make_run(recipe, run_dir).train()
    evals = [e for e in read_events(run_dir) if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [3, 4]  # every eval_steps, and at the end, once
    assert_report(run_dir, "sft", steps=4)
    assert_pngs(run_dir, {"loss", "learning_rate", "grad_norm", "eval_loss", "token_accuracy"})
    samples = assert_samples(run_dir, count=2)
    assert {s["source"] for s in samples} == {"eval split"}
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "trackio").glob("*.db"))


def test_dpo_run_reports_rewards_and_accuracy_and_evaluates_at_the_end(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe(
        "dpo",
        data={"eval_fraction": 0.25},
        training={"max_steps": 3, "save_steps": 3},
        samples={"prompts": ["Is the sky blue?"], "max_new_tokens": 4},
    )
    run_dir = tmp_path / "dpo"
    make_run(recipe, run_dir).train()
    (final_eval,) = [e for e in read_events(run_dir) if e["event"] == "eval"]
    assert final_eval["step"] == 3
    assert {"eval_loss", "eval_rewards/accuracies", "eval_rewards/margins"} <= set(final_eval)
    summary = assert_report(run_dir, "dpo", steps=3)
    assert summary["metrics"]["rewards/accuracies"]["better"] == "max"
    assert_pngs(
        run_dir,
        {"loss", "learning_rate", "grad_norm", "eval_loss", "rewards", "accuracy", "eval_margins"},
    )
    samples = assert_samples(run_dir, count=1)
    assert samples[0]["prompt"] == "Is the sky blue?" and samples[0]["source"] == "recipe"
    assert not (run_dir / "tensorboard").exists() and not (run_dir / "trackio").exists()


def test_aligntune_run_local_ends_with_where_the_report_is(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", training={"max_steps": 2, "save_steps": 2})
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "aligntune.cli.main", "run", str(recipe), "--runtime", "local",
         "-q", "--output", str(run_dir)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    at = lines.index(f"report: {run_dir / 'report.md'}")
    assert lines[at + 1] == "  status finished, 2 steps (sft on trl, cpu)"
    assert lines[at + 3].startswith("  peak memory: RSS ")
    assert (run_dir / "report.md").is_file() and (run_dir / "final" / "README.md").is_file()


def test_grpo_evaluates_held_out_prompts_with_the_recipes_rewards(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe(
        "grpo",
        data={"eval_fraction": 0.25},
        training={"max_steps": 2, "save_steps": 2, "batch_size": 4, "eval_steps": 2},
        algorithm={"name": "grpo", "num_generations": 4, "max_completion_length": 8, "beta": 0.1},
        samples={"count": 1, "max_new_tokens": 4},
    )
    run_dir = tmp_path / "grpo"
    make_run(recipe, run_dir).train()
    (final_eval,) = [e for e in read_events(run_dir) if e["event"] == "eval"]
    assert final_eval["step"] == 2
    assert {"eval_reward", "eval_rewards/numeric_match/mean"} <= set(final_eval)
    assert "eval_rewards/digit_share/mean" in final_eval  # a function's own name
    assert_pngs(
        run_dir,
        {"loss", "learning_rate", "grad_norm", "eval_loss", "rewards", "kl", "reward_spread"}
        | {"eval_reward"},
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"rewards/numeric_match/mean", "rewards/digit_share/mean"} <= set(summary["metrics"])
    assert "best" not in summary["metrics"]["loss"]  # a policy-gradient loss has no scale
    assert_samples(run_dir, count=1)


def test_kto_run_draws_desirable_and_undesirable_rewards_and_the_kl_estimate(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("kto", training={"max_steps": 2, "save_steps": 2})
    run_dir = tmp_path / "kto"
    make_run(recipe, run_dir).train()
    assert_report(run_dir, "kto", steps=2)
    assert_pngs(run_dir, {"loss", "learning_rate", "grad_norm", "rewards", "kl"})
