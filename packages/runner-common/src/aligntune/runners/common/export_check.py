"""Every export checks itself: the written model, reloaded from disk, must give the next-token
logits of the trained model (base + adapter, or final/) on a few fixed prompts.

The tolerance is relative to the largest reference logit and set by the dtype the export is
written in. The check also measures how much the adapter moves the logits at all: a merge that
dropped the adapter matches the base instead, and fails whenever the adapter did anything.

Import only after the backend's `import_stack()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aligntune.core.errors import AlignTuneError, ExitCode

PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "2 + 2 =",
)
"""Fixed prompts (user turns when the tokenizer has a chat template)."""
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 4e-2}
"""The largest allowed |logit difference|, as a fraction of the largest reference logit."""


class ExportCheckFailed(AlignTuneError):
    """The written export does not reproduce the trained model; nothing is kept."""

    exit_code = ExitCode.CRASH


@dataclass(frozen=True)
class CheckResult:
    """What export.json records of the check."""

    max_abs_diff: float
    tolerance: float
    """The absolute tolerance used: TOLERANCE[dtype] x max(1, largest |reference logit|)."""
    adapter_effect: float | None
    """max |(base + adapter) - base| logits: how far the adapter moves the model (None: no
    adapter)."""
    prompts: int

    @property
    def conclusive(self) -> bool:
        """Whether the adapter moves the logits by more than the tolerance, so that a merge that
        lost it could not pass (always true without an adapter)."""
        return self.adapter_effect is None or self.adapter_effect > self.tolerance

    def as_dict(self) -> dict[str, Any]:
        """The record's `check` entry."""
        return {
            "max_abs_logit_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "adapter_effect": self.adapter_effect,
            "prompts": self.prompts,
            "passed": True,
            "conclusive": self.conclusive,
        }


def prompt_ids(tokenizer: Any) -> list[Any]:
    """The token ids of each fixed prompt, rendered as a user turn when there is a template."""
    rendered = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
        if tokenizer.chat_template
        else text
        for text in PROMPTS
    ]
    return [tokenizer(text, return_tensors="pt").input_ids for text in rendered]


def next_token_logits(model: Any, prompts: list[Any]) -> list[Any]:
    """Float32 logits of the token after each prompt."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        return [model(input_ids=ids.to(device)).logits[0, -1].float().cpu() for ids in prompts]


def largest_difference(left: list[Any], right: list[Any]) -> float:
    """max |left - right| over every prompt and token."""
    return max(float((a - b).abs().max()) for a, b in zip(left, right, strict=True))


def compare(
    reference: list[Any],
    exported: list[Any],
    dtype: str,
    base: list[Any] | None,
    what: str,
) -> CheckResult:
    """The check: `exported` within tolerance of `reference`, else ExportCheckFailed saying by
    how much, and whether it looks like the adapter was dropped."""
    scale = max(1.0, max(float(r.abs().max()) for r in reference))
    tolerance = TOLERANCE.get(dtype, TOLERANCE["float32"]) * scale
    diff = largest_difference(reference, exported)
    effect = largest_difference(reference, base) if base is not None else None
    if not diff <= tolerance:  # also a NaN
        dropped = ""
        if base is not None and largest_difference(base, exported) <= tolerance:
            dropped = "; it matches the base without the adapter: the adapter was dropped"
        raise ExportCheckFailed(
            f"export check failed: the {what} gives next-token logits up to {diff:.4g} away "
            f"from the trained model's (tolerance {tolerance:.3g} in {dtype}){dropped}; "
            "nothing was written",
            hint="nothing is kept; please report it with the run directory's manifest.json",
        )
    return CheckResult(diff, tolerance, effect, len(reference))


def reference_logits(
    load_base: Callable[[], Any], adapter_dir: Any, prompts: list[Any]
) -> tuple[list[Any], list[Any]]:
    """(base + adapter, base alone) logits: the adapter applied by peft, unmerged."""
    import gc

    from peft import PeftModel

    model = PeftModel.from_pretrained(load_base(), str(adapter_dir))
    model.eval()
    trained = next_token_logits(model, prompts)
    with model.disable_adapter():
        base = next_token_logits(model, prompts)
    del model
    gc.collect()
    return trained, base
