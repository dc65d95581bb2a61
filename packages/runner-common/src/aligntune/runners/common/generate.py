"""Greedy generation for `predict()`: the same prompt handling as training."""

from __future__ import annotations

from typing import Any


def _encode(tokenizer: Any, prompt: Any) -> list[int]:
    if isinstance(prompt, str) and not tokenizer.chat_template:
        return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    turns = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    encoded = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True)
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return list(ids)


def generate(model: Any, tokenizer: Any, prompts: list[Any], max_new_tokens: int) -> list[str]:
    """One greedy completion per prompt, decoded without special tokens; all prompts in one
    batch (left-padded): generating token by token costs about the same for one row as for a few,
    so the run's sample prompts take one pass instead of one each."""
    import torch

    if not prompts:
        return []
    device = next(model.parameters()).device
    encoded = [_encode(tokenizer, prompt) for prompt in prompts]
    width = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(row)) + row for row in encoded], device=device)
    mask = torch.tensor(
        [[0] * (width - len(row)) + [1] * len(row) for row in encoded], device=device
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            generated = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
    finally:
        model.train(was_training)
    return [tokenizer.decode(row[width:], skip_special_tokens=True) for row in generated]
