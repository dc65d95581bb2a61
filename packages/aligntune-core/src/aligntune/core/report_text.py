"""The run report's Markdown: report.md in the run directory and the model card, final/README.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from aligntune.core.algorithms import ALGORITHM_NAMES, get_algorithm

_HEADLINE = (
    "steps",
    "epochs",
    "wall_time_s",
    "time_to_first_step_s",
    "samples_per_second",
    "tokens_per_second",
    "peak_rss_mb",
    "peak_gpu_memory_mb",
)


def _cell(value: Any) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", "<br>")


def metrics_table(summary: dict[str, Any]) -> list[str]:
    """first / last / best of each metric, as a Markdown table."""
    lines = ["| metric | first | last | best (step) |", "|---|---|---|---|"]
    for name, entry in (summary.get("metrics") or {}).items():
        best = f"{_cell(entry['best'])} ({entry['best_step']})" if "best" in entry else ""
        lines.append(f"| {name} | {_cell(entry['first'])} | {_cell(entry['last'])} | {best} |")
    return lines


def samples_table(samples: list[dict[str, Any]]) -> list[str]:
    """Each sample prompt with the base model's and the trained model's answer side by side."""
    by_prompt: dict[str, dict[str, str]] = {}
    for row in samples:
        key = _cell(row.get("prompt"))
        answer = str(row.get("completion", "")).strip() or "(nothing but whitespace)"
        by_prompt.setdefault(key, {})[str(row.get("model"))] = _cell(answer)
    if not by_prompt:
        return ["No sample generations were recorded."]
    lines = ["| prompt | base model | trained model |", "|---|---|---|"]
    for prompt, answers in by_prompt.items():
        lines.append(f"| {prompt} | {answers.get('base', '')} | {answers.get('trained', '')} |")
    return lines


def _plot_lines(plots: tuple[Path, ...], relative_to: Path) -> list[str]:
    return [f"![{p.stem}]({Path(os.path.relpath(p, relative_to)).as_posix()})" for p in plots]


def _headline(summary: dict[str, Any]) -> list[str]:
    lines = ["| | |", "|---|---|"]
    for key in ("status", "algorithm", "backend", "device", "image", *_HEADLINE):
        if summary.get(key) is not None:
            lines.append(f"| {key} | {_cell(summary[key])} |")
    return lines


def report_markdown(
    summary: dict[str, Any], plots: tuple[Path, ...], samples: list[dict[str, Any]], root: Path
) -> str:
    """report.md: the summary, the plots, final metrics and the samples side by side."""
    parts = [
        f"# Run report: {root.name}",
        "",
        *_headline(summary),
        "",
        *_results("Metrics", summary, plots, samples, root),
    ]
    return "\n".join(parts)


def _results(
    title: str,
    summary: dict[str, Any],
    plots: tuple[Path, ...],
    samples: list[dict[str, Any]],
    relative_to: Path,
) -> list[str]:
    """The sections report.md and the model card share: metrics, plots and samples."""
    return [
        f"## {title}",
        "",
        *metrics_table(summary),
        "",
        "## Plots",
        "",
        *_plot_lines(plots, relative_to),
        "",
        "## Samples (greedy)",
        "",
        *samples_table(samples),
        "",
    ]


def _defining(algorithm: str | None, recipe: dict[str, Any]) -> list[str]:
    if algorithm not in ALGORITHM_NAMES:
        return []
    spec = get_algorithm(algorithm)
    section = recipe.get("algorithm") or {}
    settings = {**spec.defining_settings, **{k: v for k, v in section.items() if k != "name"}}
    return [f"- {spec.title} (`{spec.name}`, `{spec.trl_trainer}`)"] + [
        f"- `{key}`: `{value}`" for key, value in settings.items()
    ]


def _how_to_load(final: Path, shown: Path) -> list[str]:
    if (final / "adapter_config.json").is_file():
        loader, module = "AutoPeftModelForCausalLM", "peft"
    else:
        loader, module = "AutoModelForCausalLM", "transformers"
    return [
        "```python",
        "from transformers import AutoTokenizer",
        f"from {module} import {loader}",
        "",
        f'model = {loader}.from_pretrained("{shown}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{shown}")',
        "```",
    ]


def model_card(
    summary: dict[str, Any],
    plots: tuple[Path, ...],
    samples: list[dict[str, Any]],
    recipe_text: str,
    final: Path,
    shown_final: Path | None = None,
) -> str:
    """final/README.md: recipe, data, algorithm, backend, versions, metrics, plots, loading;
    `shown_final` is final/ as the user's host names it (a container sees another path)."""
    recipe = yaml.safe_load(recipe_text) if recipe_text else {}
    recipe = recipe if isinstance(recipe, dict) else {}
    data = recipe.get("data") or {}
    train = (data.get("train") or {}).get("path")
    evaluation = (data.get("eval") or {}).get("path") or (
        f"{data['eval_fraction']} of the training rows" if data.get("eval_fraction") else "none"
    )
    model = (recipe.get("model") or {}).get("name_or_path")
    versions = summary.get("versions") or {}
    parts = [
        f"# {recipe.get('name') or final.parent.name}",
        "",
        f"Trained with aligntune from `{model}`: {summary.get('steps')} steps of "
        f"{summary.get('algorithm')} on the {summary.get('backend')} backend "
        f"({summary.get('device')}).",
        "",
        "## How to load",
        "",
        *_how_to_load(final, shown_final or final.resolve()),
        "",
        "## Algorithm",
        "",
        *_defining(summary.get("algorithm"), recipe),
        "",
        "## Data",
        "",
        f"- train: `{train}`",
        f"- eval: `{evaluation}`",
        "",
        "## Run",
        "",
        *_headline(summary),
        "",
        "## Versions",
        "",
        *[f"- {name}: {version}" for name, version in versions.items()],
        "",
        *_results("Final metrics", summary, plots, samples, final),
        "## Recipe (resolved)",
        "",
        "```yaml",
        recipe_text.rstrip(),
        "```",
        "",
    ]
    return "\n".join(parts)
