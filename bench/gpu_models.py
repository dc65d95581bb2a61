"""The GPU check's models and data, made on the spot (no download): randomly initialised Qwen2
models of Qwen2.5-0.5B's and 1.5B's real shapes with a byte-level BPE tokenizer built by the
project's tiny-model code, and the SFT, DPO and GRPO rows every measurement trains on."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

QWEN25_SHAPES: dict[str, dict[str, Any]] = {
    "0.5b": {
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "1.5b": {
        "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
        "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
}  # fmt: skip
"""Qwen/Qwen2.5-0.5B's and -1.5B's config.json dimensions (public numbers)."""
TINY_SHAPE: dict[str, Any] = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 2048,
    "tie_word_embeddings": True,
}  # fmt: skip
"""The --smoke stand-in for every shape: the check's code path in seconds, on CPU."""
WORDS = "the of and to in is was for on that with as by at from it an be this are".split()  # noqa: SIM905


def make_model(folder: Path, shape: dict[str, Any], dtype: str) -> None:
    """A random Qwen2 of `shape` (config numbers only) with the project's BPE tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from aligntune.runners.common.tiny import ALPHABET, make_tokenizer

    torch.manual_seed(0)
    tokenizer = make_tokenizer([" ".join(WORDS)] * 50 + [ALPHABET], vocab_size=2000)
    config = Qwen2Config(
        **shape,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def write_data(folder: Path, words: int, rows: int = 512) -> None:
    """sft.jsonl (text of `words` words), dpo.jsonl (pairs), grpo.jsonl (sums to answer)."""
    rng = random.Random(0)

    def text(k: int) -> str:
        return " ".join(rng.choices(WORDS, k=k))

    folder.mkdir(parents=True, exist_ok=True)
    files = {"sft": [], "dpo": [], "grpo": []}
    for _ in range(rows):
        files["sft"].append({"text": text(words)})
        half = max(words // 4, 4)
        files["dpo"].append({"prompt": text(half), "chosen": text(half), "rejected": text(half)})
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        files["grpo"].append({"prompt": f"{a} + {b} =", "answer": str(a + b)})
    for name, lines in files.items():
        body = "".join(json.dumps(line) + "\n" for line in lines)
        (folder / f"{name}.jsonl").write_text(body, encoding="utf-8")
