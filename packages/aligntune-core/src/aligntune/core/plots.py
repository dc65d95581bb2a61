"""The run report's charts: which series each algorithm draws (the registry's `plots`), and the
PNGs. matplotlib is imported only inside `draw_plots`, with the Agg backend (no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aligntune.core.algorithms import ALGORITHM_NAMES, COMMON_PLOTS, PlotSpec, get_algorithm
from aligntune.core.report import matching, metric_names, series
from aligntune.core.rundir import disk_errors

MAX_SMOOTHING = 0.9
"""The most weight the running value gets in the smoothed line (an exponential moving average)."""


def plot_specs(algorithm: str | None) -> tuple[PlotSpec, ...]:
    """The charts a run of `algorithm` may have: the common ones, then the algorithm's own."""
    own = get_algorithm(algorithm).plots if algorithm in ALGORITHM_NAMES else ()
    return (*COMMON_PLOTS, *own)


def selected_series(
    rows: dict[int, dict[str, Any]], algorithm: str | None
) -> dict[str, tuple[PlotSpec, list[str]]]:
    """chart name -> (its spec, the logged metrics it draws); charts with no data are left out."""
    names = metric_names(rows)
    chosen = {}
    for spec in plot_specs(algorithm):
        found = [n for n in matching(names, spec.series) if len(series(rows, n)) > 0]
        if found:
            chosen[spec.name] = (spec, found)
    return chosen


def smoothing_weight(points: int) -> float:
    """None for a handful of points, more for long runs: about ten points' worth of memory."""
    return min(MAX_SMOOTHING, max(0.0, 1 - 10 / points)) if points else 0.0


def smoothed(values: list[float], weight: float | None = None) -> list[float]:
    """An exponential moving average, debiased so the first points are not pulled toward 0."""
    weight = smoothing_weight(len(values)) if weight is None else weight
    out, running = [], 0.0
    for index, value in enumerate(values, start=1):
        running = weight * running + (1 - weight) * value
        out.append(running / (1 - weight**index))
    return out


def draw_plots(
    rows: dict[int, dict[str, Any]], algorithm: str | None, folder: Path
) -> tuple[Path, ...]:
    """One PNG per chart with data in `folder` (earlier PNGs there are replaced); their paths."""
    chosen = selected_series(rows, algorithm)
    with disk_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
    if not chosen:
        return ()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    written = []
    for name, (spec, names) in chosen.items():
        figure, axes = pyplot.subplots(figsize=(7, 4), dpi=100)
        for index, metric in enumerate(names):
            steps, values = zip(*series(rows, metric), strict=True)
            color = f"C{index % 10}"
            axes.plot(steps, values, "o", color=color, alpha=0.35, markersize=4)
            axes.plot(steps, smoothed(list(values)), "-", color=color, label=metric)
        axes.set_title(spec.title)
        axes.set_xlabel("optimizer step (dots: logged values; line: smoothed)")
        axes.set_ylabel(spec.unit)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
        figure.tight_layout()
        path = folder / f"{name}.png"
        with disk_errors(path):
            figure.savefig(path)
        pyplot.close(figure)
        written.append(path)
    return tuple(written)
