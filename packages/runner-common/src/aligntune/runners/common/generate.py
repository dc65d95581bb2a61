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
    """One greedy completion per prompt, decoded without special tokens."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.no_grad():
            for prompt in prompts:
                ids = torch.tensor([_encode(tokenizer, prompt)], device=device)
                generated = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
                new = generated[0, ids.shape[1] :]
                outputs.append(tokenizer.decode(new, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return outputs
