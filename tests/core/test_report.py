"""The run report from events alone: series chosen per algorithm, summary, metrics.csv, PNGs,
report.md and the model card; `aligntune report` with no training stack importable."""

from __future__ import annotations

import csv
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aligntune.core.algorithms import ALGORITHMS, COMMON_PLOTS
from aligntune.core.plots import selected_series, smoothed
from aligntune.core.report import metric_rows, summarize, summary_lines, write_report
from aligntune.core.rundir import RunDirectory

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STACK = ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "unsloth")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking its signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def grpo_events(steps: int = 12) -> list[dict[str, Any]]:
    """What a GRPO run with two reward functions and an eval split writes."""
    events: list[dict[str, Any]] = [
        {"event": "start", "time": 100.0, "runner_started": 90.0, "total_steps": steps,
         "step": 0, "algorithm": "grpo", "backend": "trl"},
        {"event": "first_step", "time": 104.0, "step": 1, "seconds_since_start": 14.0,
         "seconds_since_train_begin": 4.0},
    ]  # fmt: skip
    for step in range(1, steps + 1):
        events.append(
            {"event": "log", "time": 104.0 + step, "step": step, "total": steps,
             "loss": 0.1 / step, "learning_rate": 1e-3 * (1 - step / steps), "grad_norm": 0.5,
             "epoch": step / steps, "reward": 0.1 * step, "reward_std": 0.2,
             "frac_reward_zero_std": 0.25, "kl": 0.01 * step, "rewards/digits/mean": 0.05 * step,
             "rewards/length/mean": 0.05 * step, "rewards/digits/std": 0.1,
             "num_tokens": 100 * step, "peak_rss_mb": 500.0 + step}
        )  # fmt: skip
        if step % 4 == 0:
            events.append({"event": "eval", "time": 104.5 + step, "step": step, "total": steps,
                           "eval_loss": 0.2, "eval_reward": 0.03 * step})  # fmt: skip
    events.append(
        {"event": "end", "time": 130.0, "status": "finished", "final": "final",
         "metrics": {"train_runtime": 24.0, "train_samples_per_second": 2.0,
                     "train_steps_per_second": 0.5}}
    )  # fmt: skip
    return events


def write_events(root: Path, events: list[dict[str, Any]]) -> RunDirectory:
    root.mkdir(parents=True, exist_ok=True)
    (root / ".aligntune-run").touch()
    with (root / "events.jsonl").open("w") as out:
        out.writelines(json.dumps(e) + "\n" for e in events)
    return RunDirectory(root)


def test_grpo_draws_every_reward_function_and_the_total_kl_and_spread() -> None:
    chosen = selected_series(metric_rows(grpo_events()), "grpo")
    assert chosen["rewards"][1] == ["reward", "rewards/digits/mean", "rewards/length/mean"]
    assert chosen["kl"][1] == ["kl"]
    assert chosen["reward_spread"][1] == ["reward_std", "frac_reward_zero_std"]
    assert chosen["eval_reward"][1] == ["eval_reward"]
    assert {"loss", "learning_rate", "grad_norm", "eval_loss"} <= set(chosen)
    assert "accuracy" not in chosen  # a DPO chart


def test_dpo_draws_chosen_rejected_and_accuracy_and_a_chart_without_data_is_left_out() -> None:
    rows = {
        1: {"loss": 0.69, "rewards/chosen": 0.1, "rewards/rejected": -0.1,
            "rewards/margins": 0.2, "rewards/accuracies": 0.5, "grad_norm": 1.0},
        2: {"loss": 0.6, "rewards/chosen": 0.2, "rewards/rejected": -0.2,
            "rewards/margins": 0.4, "rewards/accuracies": 0.75, "grad_norm": None},
    }  # fmt: skip
    chosen = selected_series(rows, "dpo")
    assert chosen["rewards"][1] == ["rewards/chosen", "rewards/rejected", "rewards/margins"]
    assert chosen["accuracy"][1] == ["rewards/accuracies"]
    assert "eval_loss" not in chosen and "learning_rate" not in chosen and "kl" not in chosen
    assert chosen["grad_norm"][1] == ["grad_norm"]  # one number is enough to draw


def test_every_algorithm_plots_the_common_charts_and_names_each_chart_once() -> None:
    common = {spec.name for spec in COMMON_PLOTS}
    for algorithm in ALGORITHMS:
        names = [spec.name for spec in algorithm.plots]
        assert len(set(names)) == len(names) and not set(names) & common, algorithm.name
        if algorithm.needs_rewards:
            assert {"rewards", "kl", "reward_spread"} <= set(names), algorithm.name


def test_a_resumed_step_keeps_its_newest_values_and_eval_joins_its_step() -> None:
    events = [
        {"event": "log", "time": 1, "step": 1, "loss": 3.0},
        {"event": "log", "time": 2, "step": 2, "loss": 2.5},
        {"event": "start", "time": 3, "step": 1},
        {"event": "log", "time": 4, "step": 2, "loss": 2.4},
        {"event": "eval", "time": 5, "step": 2, "eval_loss": 2.6},
    ]
    assert metric_rows(events) == {1: {"loss": 3.0}, 2: {"loss": 2.4, "eval_loss": 2.6}}


def test_summary_counts_attempts_time_throughput_memory_and_best_values(tmp_path: Path) -> None:
    events = grpo_events()
    resumed = [
        {"event": "start", "time": 200.0, "runner_started": 195.0, "total_steps": 12, "step": 12,
         "algorithm": "grpo", "backend": "trl"},
        {"event": "end", "time": 201.0, "status": "finished", "metrics": {}},
    ]  # fmt: skip
    run_dir = write_events(tmp_path / "run", events + resumed)
    summary = summarize(run_dir)
    assert summary["attempts"] == 2
    assert summary["wall_time_s"] == (130.0 - 90.0) + (201.0 - 195.0)
    assert summary["time_to_first_step_s"] == 14.0
    assert summary["steps"] == 12 and summary["total_steps"] == 12
    assert summary["peak_rss_mb"] == 512.0
    loss = summarize(write_events(tmp_path / "one", events))["metrics"]["loss"]
    assert loss["first"] == 0.1 and "best" not in loss  # GRPO's loss: lower is not better
    assert summarize(run_dir)["metrics"]["eval_loss"].get("best") is None
    for event in events:
        event["algorithm"] = "sft"  # the same numbers as an SFT run's: lower loss is better
    sft = summarize(write_events(tmp_path / "sft", events))["metrics"]["loss"]
    assert sft["best"] == pytest.approx(0.1 / 12)
    assert sft["best_step"] == 12 and sft["better"] == "min"
    for event in events:
        event["algorithm"] = "grpo"
    reward = summarize(write_events(tmp_path / "two", events))["metrics"]["reward"]
    assert reward["better"] == "max" and reward["best_step"] == 12
    spread = summarize(run_dir)["metrics"]["reward_std"]
    assert "best" not in spread  # a spread has no better direction
    one = summarize(write_events(tmp_path / "three", events))
    assert one["tokens_per_second"] == 1200 / 24.0 and one["samples_per_second"] == 2.0
    lines = summary_lines(one)
    assert lines[0] == "status finished, 12 steps (grpo on trl, None)"
    assert lines[3] == "loss: first 0.1, last 0.008333"
    assert lines[4] == "reward: first 0.1, last 1.2, best 1.2 at step 12"


def test_a_run_whose_end_event_was_cut_off_reports_its_status_json(tmp_path: Path) -> None:
    run_dir = write_events(tmp_path / "run", grpo_events()[:-1])
    with run_dir.events.open("a") as handle:
        handle.write('{"event": "end", "time": 130.0, "status": "fin')  # killed mid-line
    assert summarize(run_dir)["status"] == "running"  # nothing says otherwise
    run_dir.set_status("finished", step=12)
    assert summarize(run_dir)["status"] == "finished"


def test_lines_of_events_jsonl_that_are_not_events_are_passed_over(tmp_path: Path) -> None:
    run_dir = write_events(tmp_path / "run", grpo_events())
    with run_dir.events.open("a") as handle:
        handle.write('[1, 2]\n7\n"text"\nnull\n')  # damaged lines that still parse as JSON
    write_report(run_dir.root)
    assert summarize(run_dir)["status"] == "finished" and summarize(run_dir)["steps"] == 12


def test_a_diverged_run_names_its_best_finite_value_never_nan(tmp_path: Path) -> None:
    losses = [float("nan"), 2.0, 1.5, float("inf"), float("nan")]
    events = [{"event": "start", "time": 0.0, "step": 0, "algorithm": "sft", "backend": "trl"}]
    events += [
        {"event": "log", "time": float(step), "step": step, "loss": loss}
        for step, loss in enumerate(losses, start=1)
    ]
    loss = summarize(write_events(tmp_path / "run", events))["metrics"]["loss"]
    assert (loss["best"], loss["best_step"]) == (1.5, 3)
    assert (loss["min"], loss["max"]) == (1.5, 2.0)
    assert "loss: first nan, last nan, best 1.5 at step 3" in summary_lines(
        summarize(RunDirectory(tmp_path / "run"))
    )
    all_nan = [{**e, "loss": float("nan")} if e["event"] == "log" else e for e in events]
    assert "best" not in summarize(write_events(tmp_path / "nan", all_nan))["metrics"]["loss"]


def test_smoothing_follows_a_handful_of_points_and_debiases_the_start() -> None:
    assert smoothed([3.0, 1.0, 2.0]) == [3.0, 1.0, 2.0]
    long = smoothed([1.0] * 50)
    assert long == pytest.approx([1.0] * 50)


def test_report_files_on_disk(tmp_path: Path) -> None:
    run_dir = write_events(tmp_path / "run", grpo_events())
    (run_dir.root / "final").mkdir()
    (run_dir.root / "final" / "adapter_config.json").write_text("{}")
    (run_dir.root / "recipe.resolved.yaml").write_text(
        "name: tiny-grpo\nalgorithm:\n  name: grpo\n  beta: 0.0\nmodel:\n  name_or_path: /m\n"
        "data:\n  train:\n    path: /d/prompts.jsonl\n  eval_fraction: 0.25\n"
    )
    samples = [
        {"model": "base", "step": 0, "prompt": "2+2?", "completion": "  \n"},
        {"model": "trained", "step": 12, "prompt": "2+2?", "completion": "4"},
    ]
    (run_dir.root / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    files = write_report(run_dir.root)
    names = sorted(p.name for p in files.plots)
    assert names == sorted(
        f"{n}.png"
        for n in ("loss", "learning_rate", "grad_norm", "eval_loss", "rewards", "kl",
                  "reward_spread", "eval_reward")
    )  # fmt: skip
    for plot in files.plots:
        assert png_size(plot) == (700, 400)
    with files.metrics.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert rows[3]["eval_reward"] == "0.12" and rows[0]["eval_reward"] == ""
    report = files.report.read_text()
    assert "![rewards](plots/rewards.png)" in report
    assert "| 2+2? | (nothing but whitespace) | 4 |" in report
    card = (run_dir.root / "final" / "README.md").read_text()
    assert "AutoPeftModelForCausalLM.from_pretrained" in card
    assert "![kl](../plots/kl.png)" in card
    assert "- `loss_type`: `grpo`" in card and "- `beta`: `0.0`" in card
    assert "- train: `/d/prompts.jsonl`" in card and "0.25 of the training rows" in card


BLOCKED_RUN = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {stack!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
sys.argv = ["aligntune", "report", sys.argv[1]]
from aligntune.cli.main import main
try:
    main()
finally:
    print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in {stack!r}))
"""


def test_aligntune_report_regenerates_identical_files_without_the_training_stack(
    tmp_path: Path,
) -> None:
    run_dir = write_events(tmp_path / "run", grpo_events())
    first = write_report(run_dir.root)
    copy = tmp_path / "copy"
    shutil.copytree(run_dir.root, copy)
    for name in ("summary.json", "metrics.csv", "report.md"):
        (copy / name).unlink()
    shutil.rmtree(copy / "plots")
    code = BLOCKED_RUN.format(stack=STACK)
    result = subprocess.run(
        [sys.executable, "-c", code, str(copy)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout
    assert f"report: {copy / 'report.md'}" in result.stdout
    for name in ("summary.json", "metrics.csv"):
        assert (copy / name).read_bytes() == (run_dir.root / name).read_bytes(), name
    assert sorted(p.name for p in (copy / "plots").iterdir()) == sorted(p.name for p in first.plots)


def test_aligntune_report_of_a_folder_without_events_is_one_clean_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aligntune.cli.main", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {tmp_path} is not an aligntune run directory")
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_the_docs_chart_table_says_what_the_registry_draws() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    charts = [(spec, "every one") for spec in COMMON_PLOTS] + [
        (spec, algorithm.name) for algorithm in ALGORITHMS for spec in algorithm.plots
    ]
    for spec, who in charts:
        found = [
            row
            for row in rows
            if row.startswith(f"| `{spec.name}` |") and who in row.split("|")[2]
            and all(f"`{series}`" in row for series in spec.series)
        ]  # fmt: skip
        assert found, f"docs/report.md has no row for {who}'s {spec.name} chart {spec.series}"


def test_aligntune_report_never_writes_into_a_folder_aligntune_did_not_make(
    tmp_path: Path,
) -> None:
    """A user's folder that happens to hold an events.jsonl (and a report.md of their own)."""
    (tmp_path / "events.jsonl").write_text('{"level": "info", "msg": "server up"}\n')
    (tmp_path / "report.md").write_text("# My notes\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = subprocess.run(
        [sys.executable, "-m", "aligntune.cli.main", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "is not an aligntune run directory (no .aligntune-run)" in result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
