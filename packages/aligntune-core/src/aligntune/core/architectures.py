"""The module names LoRA can adapt in the common architectures, by `model_type`, as data.

`model.peft.target_modules` is checked against this table when the model is a local folder whose
config.json names one of these architectures; other architectures are not checked. The names are
those of transformers' modeling files (`models/<arch>/modeling_<arch>.py`, transformers 5.17 in
both images): the linear layers of attention and MLP, the output head and the token embeddings
(PEFT adapts embeddings too). Mixture-of-experts and multimodal architectures are left out: their
expert and vision-tower module names differ between transformers versions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType

_LLAMA_LIKE = frozenset(
    {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    | {"lm_head", "embed_tokens"}
)

TARGET_MODULES: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "llama",
                "mistral",
                "qwen2",
                "qwen3",
                "gemma",
                "gemma2",
                "gemma3_text",
                "granite",
                "cohere",
                "olmo2",
                "smollm3",
            ),
            _LLAMA_LIKE,
        ),
        "phi3": frozenset({"qkv_proj", "o_proj", "gate_up_proj", "down_proj"})
        | {"lm_head", "embed_tokens"},
        "phi": frozenset({"q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"})
        | {"lm_head", "embed_tokens"},
        "starcoder2": frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"})
        | {"lm_head", "embed_tokens"},
        # GPT-2's attention and MLP are Conv1D layers, which PEFT adapts like linear ones.
        "gpt2": frozenset({"c_attn", "c_proj", "c_fc", "lm_head", "wte", "wpe"}),
    }
)
"""model_type -> the module names `model.peft.target_modules` may list for it."""


def config_model_type(folder: Path) -> str | None:
    """The `model_type` in a local model folder's config.json; None when it cannot be read."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return model_type if isinstance(model_type, str) else None


def unknown_target_modules(model_type: str, names: Iterable[str]) -> list[str]:
    """The names that adapt no module of `model_type` (unchecked architectures: none).

    PEFT matches a name against the end of each module's dotted path, so `self_attn.q_proj` names
    `q_proj`; the last part is what must exist.
    """
    valid = TARGET_MODULES.get(model_type)
    if valid is None:
        return []
    return [name for name in names if name.rsplit(".", 1)[-1] not in valid]
