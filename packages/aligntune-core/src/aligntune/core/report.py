"""The run report, from the run directory's own files: events.jsonl first, then manifest.json,
plan.json, recipe.resolved.yaml and samples.jsonl. No training stack; matplotlib only draws.

`write_report(run_dir)` writes summary.json, metrics.csv, plots/*.png, report.md and, when the
model was saved, final/README.md (the model card). Runners call it when a run ends, and
`aligntune report RUN_DIR` regenerates the same files on the host.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from aligntune.core.algorithms import ALGORITHM_NAMES, get_algorithm
from aligntune.core.report_text import model_card, report_markdown
from aligntune.core.rundir import RunDirectory, write_atomic

SUMMARY = "summary.json"
METRICS = "metrics.csv"
PLOTS = "plots"
REPORT = "report.md"
SAMPLES = "samples.jsonl"
CARD = "README.md"
REPORT_OUTPUTS = (SUMMARY, METRICS, PLOTS, REPORT, SAMPLES)
"""The run directory's report files (the model card lives in final/)."""

_NOT_METRICS = frozenset({"event", "time", "step", "total"})
_BETTER: tuple[tuple[str, str | None], ...] = (
    ("*std*", None),
    ("*rejected*", None),
    ("*loss*", "min"),
    ("*accurac*", "max"),
    ("*margins*", "max"),
    ("*reward*", "max"),
)
"""Which way a metric improves, by name pattern, first match wins (None: no direction)."""


@dataclass(frozen=True)
class ReportFiles:
    """What `write_report` wrote."""

    summary: Path
    metrics: Path
    plots: tuple[Path, ...]
    report: Path
    card: Path | None


def attempts(events: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The events split into the runner's attempts, each beginning with its `start` event."""
    split: list[list[dict[str, Any]]] = []
    for event in events:
        if event.get("event") == "start" or not split:
            split.append([])
        split[-1].append(event)
    return split


def metric_rows(events: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """step -> every metric logged at that step (training and evaluation); a step logged again
    after a resume keeps its newest values."""
    rows: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.get("event") not in ("log", "eval") or not isinstance(event.get("step"), int):
            continue
        row = rows.setdefault(event["step"], {})
        row.update({k: v for k, v in event.items() if k not in _NOT_METRICS})
    return dict(sorted(rows.items()))


def series(rows: dict[int, dict[str, Any]], name: str) -> list[tuple[int, float]]:
    """(step, value) of one metric, leaving out steps where it is missing or not a number."""
    return [
        (step, float(row[name]))
        for step, row in rows.items()
        if isinstance(row.get(name), int | float) and not isinstance(row.get(name), bool)
    ]


def metric_names(rows: dict[int, dict[str, Any]]) -> list[str]:
    """Every metric name that has a number somewhere, in first-logged order."""
    names: dict[str, None] = {}
    for row in rows.values():
        names.update(dict.fromkeys(k for k, v in row.items() if isinstance(v, int | float)))
    return list(names)


def matching(names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The metric names each pattern matches (`*` for any part), in the patterns' order."""
    names = list(names)
    found: list[str] = []
    for pattern in patterns:
        found += sorted(n for n in names if fnmatchcase(n, pattern) and n not in found)
    return found


def _direction(name: str, algorithm: str | None) -> str | None:
    way = next((way for pattern, way in _BETTER if fnmatchcase(name, pattern)), None)
    if way == "min" and algorithm in ALGORITHM_NAMES:
        # A policy-gradient loss (GRPO family, PPO) has no fixed scale: lower is not better.
        return way if get_algorithm(algorithm).scorer == "none" else None
    return way


def metric_stats(
    rows: dict[int, dict[str, Any]], algorithm: str | None = None
) -> dict[str, dict[str, Any]]:
    """first, last, min, max and (for likelihood losses, rewards, accuracies) best, each with
    its step."""
    stats = {}
    for name in metric_names(rows):
        points = series(rows, name)
        if not points:
            continue
        # A diverged step logs nan or inf: it is no one's minimum, maximum or best.
        finite = [p for p in points if math.isfinite(p[1])]
        entry: dict[str, Any] = {
            "first": points[0][1],
            "last": points[-1][1],
            "last_step": points[-1][0],
            "min": min((v for _, v in finite), default=math.nan),
            "max": max((v for _, v in finite), default=math.nan),
        }
        way = _direction(name, algorithm)
        if way is not None and finite:
            step, value = (min if way == "min" else max)(finite, key=lambda p: p[1])
            entry.update(best=value, best_step=step, better=way)
        stats[name] = entry
    return stats


def _wall_time(split: list[list[dict[str, Any]]]) -> float:
    """Seconds the runner ran, summed over attempts (from its start, model loading included)."""
    total = 0.0
    for events in split:
        start = events[0]
        began = start.get("runner_started") or start.get("time")
        if isinstance(began, int | float):
            total += max(0.0, float(events[-1]["time"]) - began)
    return round(total, 3)


def summarize(run_dir: RunDirectory) -> dict[str, Any]:
    """summary.json's content: counts, timing, throughput, memory, metrics, provenance."""
    events = list(run_dir.iter_events())
    split = [a for a in attempts(events) if a and a[0].get("event") == "start"]
    rows = metric_rows(events)
    starts = [a[0] for a in split]
    end: dict[str, Any] = next((e for e in reversed(events) if e.get("event") == "end"), {})
    end_metrics = end.get("metrics") or {}
    first_step = next((e for e in events if e.get("event") == "first_step"), {})
    logs = [e for e in events if e.get("event") == "log"]
    runtime = end_metrics.get("train_runtime")
    tokens = series(rows, "num_tokens")
    manifest = run_dir.read_json(run_dir.manifest) or {}
    plan = run_dir.read_json(run_dir.plan) or {}
    return {
        # status.json when the end event is lost (events.jsonl cut short by a kill or full disk).
        "status": end.get("status")
        or (run_dir.read_status() or {}).get("status", "running" if split else "not started"),
        "algorithm": starts[-1].get("algorithm") if starts else plan.get("algorithm"),
        "backend": starts[-1].get("backend") if starts else plan.get("backend"),
        "device": plan.get("device"),
        "runtime": plan.get("runtime"),
        "image": plan.get("image"),
        "image_id": manifest.get("image_id"),
        "versions": manifest.get("packages", {}),
        "steps": max(rows, default=0),
        "total_steps": starts[-1].get("total_steps") if starts else None,
        "epochs": series(rows, "epoch")[-1][1] if series(rows, "epoch") else None,
        "attempts": len(split),
        "wall_time_s": _wall_time(split),
        "time_to_first_step_s": first_step.get("seconds_since_start"),
        "train_runtime_s": runtime,
        "samples_per_second": end_metrics.get("train_samples_per_second"),
        "steps_per_second": end_metrics.get("train_steps_per_second"),
        "tokens_per_second": (
            round(tokens[-1][1] / runtime, 3)
            if tokens and isinstance(runtime, int | float) and runtime
            else None
        ),
        "peak_rss_mb": _peak(logs, "peak_rss_mb"),
        "peak_gpu_memory_mb": _peak(logs, "peak_gpu_memory_mb"),
        "metrics": metric_stats(rows, starts[-1].get("algorithm") if starts else None),
    }


def _rate(count: float | None, seconds: Any) -> float | None:
    """count / seconds, when both are known."""
    if count is None or not isinstance(seconds, int | float) or seconds <= 0:
        return None
    return round(count / seconds, 3)


def _peak(events: list[dict[str, Any]], key: str) -> float | None:
    values = [e[key] for e in events if isinstance(e.get(key), int | float)]
    return max(values) if values else None


def metrics_csv(rows: dict[int, dict[str, Any]]) -> str:
    """One row per logged step, one column per metric; empty where a step did not log it."""
    names = metric_names(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", *names])
    for step, row in rows.items():
        writer.writerow([step, *("" if row.get(n) is None else row[n] for n in names)])
    return out.getvalue()


def read_samples(run_dir: RunDirectory) -> list[dict[str, Any]]:
    """samples.jsonl's rows (the base model's and the trained model's answers); [] when none."""
    path = run_dir.root / SAMPLES
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def write_report(root: Path, shown_root: Path | None = None) -> ReportFiles:
    """Write (or rewrite) the report of the run directory `root` from its files; `shown_root` is
    the run directory as the user's host names it, when this process sees it elsewhere."""
    # plots builds on this module's readers: imported here, not at the top, to avoid a cycle.
    from aligntune.core.plots import draw_plots

    run_dir = RunDirectory(root)
    events = list(run_dir.iter_events())
    rows = metric_rows(events)
    summary = summarize(run_dir)
    summary_path = root / SUMMARY
    run_dir.write_json(summary_path, summary)
    metrics_path = root / METRICS
    write_atomic(metrics_path, metrics_csv(rows))
    algorithm = summary.get("algorithm")
    plots = draw_plots(rows, algorithm, root / PLOTS)
    samples = read_samples(run_dir)
    recipe = run_dir.recipe.read_text(encoding="utf-8") if run_dir.recipe.is_file() else ""
    report_path = root / REPORT
    write_atomic(report_path, report_markdown(summary, plots, samples, root))
    card = None
    if run_dir.final.is_dir():
        card = run_dir.final / CARD
        shown = shown_root / run_dir.final.name if shown_root is not None else None
        write_atomic(card, model_card(summary, plots, samples, recipe, run_dir.final, shown))
    return ReportFiles(summary_path, metrics_path, plots, report_path, card)


HEADLINE_METRICS = ("loss", "reward", "eval_loss", "eval_reward", "rewards/accuracies")
"""The metrics `summary_lines` shows first, when logged; then the others with a best value."""


def _num(value: Any, unit: str = "") -> str:
    return f"{value:.4g}{unit}" if isinstance(value, int | float) else "?"


def summary_lines(summary: dict[str, Any], limit: int = 7) -> list[str]:
    """The first lines `aligntune run` prints: status, steps, time, throughput, key metrics."""
    lines = [
        f"status {summary.get('status')}, {summary.get('steps')} steps"
        f" ({summary.get('algorithm')} on {summary.get('backend')}, {summary.get('device')})",
        f"wall time {_num(summary.get('wall_time_s'), ' s')}, first step after "
        f"{_num(summary.get('time_to_first_step_s'), ' s')}, "
        f"{_num(summary.get('samples_per_second'))} samples/s, "
        f"{_num(summary.get('tokens_per_second'))} tokens/s",
        f"peak memory: RSS {_num(summary.get('peak_rss_mb'), ' MB')}"
        + (
            f", GPU {_num(summary['peak_gpu_memory_mb'], ' MB')}"
            if summary.get("peak_gpu_memory_mb") is not None
            else ""
        ),
    ]
    metrics = summary.get("metrics") or {}
    ranked = [n for n in HEADLINE_METRICS if n in metrics]
    ranked += [n for n in metrics if "best" in metrics[n] and n not in ranked]
    for name in ranked[: max(0, limit - len(lines))]:
        entry = metrics[name]
        best = f", best {entry['best']:.4g} at step {entry['best_step']}" if "best" in entry else ""
        lines.append(f"{name}: first {entry['first']:.4g}, last {entry['last']:.4g}{best}")
    return lines
