"""The run report's inputs the runner makes: sample generations, a few fixed prompts answered
greedily by the base model before training and by the trained model after (one JSON line each in
samples.jsonl), and the report itself when the run ends.

Only rank 0 generates (other ranks never wait on it); under FSDP no rank holds a whole model, so
no samples are made there.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Literal

from aligntune.core.recipe import Recipe
from aligntune.core.report import SAMPLES, summary_lines, write_report
from aligntune.core.rundir import RunDirectory, disk_errors
from aligntune.runners.common import distributed

Stage = Literal["base", "trained"]


def _prompt_of(row: dict[str, Any]) -> Any:
    """The prompt of one prepared row: its `prompt`, or a conversation up to its last answer."""
    if row.get("prompt"):
        return row["prompt"]
    turns = row.get("messages")
    if isinstance(turns, list) and turns:
        last = max((i for i, t in enumerate(turns) if t.get("role") != "assistant"), default=-1)
        return turns[: last + 1] if last >= 0 else None
    return None


def sample_prompts(
    recipe: Recipe, examples: tuple[tuple[str, list[dict[str, Any]]], ...]
) -> tuple[list[Any], str]:
    """The prompts to answer and where they come from: the recipe's `samples.prompts`, else the
    first `samples.count` prompts of the eval split, else of the training data."""
    settings = recipe.samples
    if settings.prompts:
        system = recipe.data.system_prompt
        if system is None:
            return list(settings.prompts), "recipe"
        return [
            [{"role": "system", "content": system}, {"role": "user", "content": p}]
            for p in settings.prompts
        ], "recipe"
    for source, rows in examples:
        prompts = [prompt for prompt in map(_prompt_of, rows) if prompt is not None]
        if prompts:
            return prompts[: settings.count], source
    return [], "none"


def write_samples(
    run_dir: RunDirectory,
    stage: Stage,
    model: Any,
    tokenizer: Any,
    prompts: list[Any],
    source: str,
    max_new_tokens: int,
    step: int,
) -> None:
    """Answer each prompt greedily and append one line per answer to samples.jsonl (the base
    stage starts the file afresh)."""
    from aligntune.runners.common.generate import generate

    began = time.time()
    answers = generate(model, tokenizer, prompts, max_new_tokens)
    path = run_dir.root / SAMPLES
    with disk_errors(path), path.open("w" if stage == "base" else "a", encoding="utf-8") as out:
        for prompt, answer in zip(prompts, answers, strict=True):
            line = {"model": stage, "step": step, "source": source, "prompt": _text(prompt)}
            out.write(json.dumps({**line, "completion": answer}) + "\n")
    took = time.time() - began
    print(f"aligntune: {len(prompts)} {stage} sample(s) in {took:.1f} s -> {path}", file=sys.stderr)


def _text(prompt: Any) -> str:
    """A prompt as one string: a conversation's last user turn (the report shows that)."""
    if isinstance(prompt, list):
        users = [t.get("content", "") for t in prompt if t.get("role") == "user"]
        return str(users[-1] if users else prompt[-1].get("content", ""))
    return str(prompt)


def answer_samples(
    recipe: Recipe, run_dir: RunDirectory, stage: Stage, model: Any, pieces: Any, step: int
) -> None:
    """Rank 0 answers the sample prompts; a failure is a warning, never the run's end."""
    settings = recipe.samples
    if not distributed.is_rank_zero() or recipe.distributed.strategy == "fsdp":
        return
    if not settings.prompts and settings.count == 0:
        return
    prompts, source = sample_prompts(recipe, pieces.examples)
    if not prompts:
        return
    try:
        write_samples(
            run_dir,
            stage,
            model,
            pieces.tokenizer,
            prompts,
            source,
            settings.max_new_tokens,
            step,
        )
    except Exception as exc:  # samples are a courtesy: the trained model is what counts
        print(f"aligntune: warning: no {stage} samples: {exc}", file=sys.stderr)


def report_quietly(run_dir: RunDirectory) -> None:
    """Write the run report and print where it is; a failure is a warning, since the run's
    outcome stands whether or not its report is drawn."""
    try:
        files = write_report(run_dir.root)
    except Exception as exc:
        print(f"aligntune: warning: the run report was not written: {exc}", file=sys.stderr)
        return
    print(f"aligntune: report: {files.report}", file=sys.stderr)
    for line in summary_lines(run_dir.read_json(files.summary) or {}):
        print(f"aligntune:   {line}", file=sys.stderr)
