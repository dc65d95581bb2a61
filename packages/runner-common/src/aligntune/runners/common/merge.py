"""Merge a LoRA adapter into its base one safetensors shard at a time.

Only one shard of the base (and the adapter, which is small) is in memory at once, so a model
larger than RAM or GPU memory still merges: each shard is read, every weight the adapter changes
gets `scale * B @ A` added (in float32, then cast to the training dtype), and the shard is written
under the same name. A QLoRA adapter learned against the 4-bit base: each weight the training
quantized goes through the same NF4 round trip first (bitsandbytes, on CUDA), so the merge adds
the adapter to the weights it was trained with.

Import only after the backend's `import_stack()`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aligntune.core.errors import BackendUnavailableError, ModelError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")
_UNSUPPORTED = ("use_dora", "modules_to_save", "trainable_token_indices", "alpha_pattern")
"""Adapter features the shard-wise merge does not reproduce; refused by name."""
QUANTIZED_BLOCKSIZE = 64
"""bitsandbytes' default NF4 block size, which transformers' BitsAndBytesConfig keeps."""


@dataclass(frozen=True)
class LoraPair:
    """One adapted weight: the base tensor it changes and its low-rank factors."""

    a: Any
    b: Any
    scale: float

    def delta(self) -> Any:
        """`scale * B @ A` in float32, the shape of the base weight."""
        return (self.b.float() @ self.a.float()) * self.scale


def load_adapter(adapter_dir: Path) -> dict[str, LoraPair]:
    """The adapter's LoRA pairs keyed by the base weight they change (`model.layers.0...weight`)."""
    from safetensors.torch import load_file

    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    used = [name for name in _UNSUPPORTED if config.get(name)]
    if config.get("peft_type", "LORA") != "LORA" or used or config.get("fan_in_fan_out"):
        what = ", ".join(used) or config.get("peft_type") or "fan_in_fan_out"
        raise ModelError(f"{adapter_dir}: the adapter uses {what}, which export cannot merge")
    tensors = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    parts: dict[str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        match = _KEY.match(key)
        if match is None:
            raise ModelError(f"{adapter_dir}: {key} is not a LoRA weight export can merge")
        parts.setdefault(f"{match['module']}.weight", {})[match["part"]] = tensor
    alpha = float(config["lora_alpha"])
    pairs = {}
    for weight, factors in parts.items():
        if set(factors) != {"A", "B"}:
            raise ModelError(f"{adapter_dir}: {weight} has only lora_{''.join(factors)}")
        rank = factors["A"].shape[0]  # per module: rank_pattern changes it, the tensor says it
        scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        pairs[weight] = LoraPair(factors["A"], factors["B"], scale)
    return pairs


def shard_names(base_dir: Path) -> list[str]:
    """The base model's safetensors files, in index order."""
    if (base_dir / INDEX).is_file():
        index = json.loads((base_dir / INDEX).read_text(encoding="utf-8"))
        return sorted(set(index["weight_map"].values()))
    if (base_dir / SINGLE).is_file():
        return [SINGLE]
    raise ModelError(
        f"{base_dir} has no safetensors weights; export merges safetensors checkpoints only"
    )


def nf4_round_trip() -> Callable[[Any], Any]:
    """A function giving a weight as the 4-bit training saw it: NF4-quantized, dequantized."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            "merging a QLoRA adapter needs a CUDA GPU (bitsandbytes dequantizes there)",
            hint="run the export in the run's cuda image, or use --format adapter",
        )
    try:
        from bitsandbytes.functional import dequantize_4bit, quantize_4bit
    except ImportError:
        raise BackendUnavailableError(
            "merging a QLoRA adapter needs bitsandbytes, which this image does not install",
            hint="use --format adapter, or --runtime local where bitsandbytes is installed",
        ) from None

    def round_trip(weight: Any) -> Any:
        packed, state = quantize_4bit(
            weight.cuda(), blocksize=QUANTIZED_BLOCKSIZE, quant_type="nf4"
        )
        return dequantize_4bit(packed, state).to(weight.dtype).cpu()

    return round_trip


def quantized_weights(base_dir: Path, trust_remote_code: bool = False) -> set[str]:
    """The weights 4-bit loading quantizes: every Linear layer's but the output head's (the
    model is built on the meta device: no memory, no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(base_dir), trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    head = model.get_output_embeddings()
    return {
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }


def write_shard(tensors: dict[str, Any], path: Path) -> None:
    """One safetensors file; an OS error (a full disk) raised as the OSError it is."""
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata={"format": "pt"})
    except OSError:
        raise
    except Exception as exc:  # safetensors reports I/O errors as its own, naming the errno
        code = re.search(r"code: (\d+)", str(exc))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from None


def base_keys(base_dir: Path, names: list[str]) -> set[str]:
    """Every weight name of the base, from its index or its file's header (no weights read)."""
    from safetensors import safe_open

    if len(names) > 1:
        return set(json.loads((base_dir / INDEX).read_text(encoding="utf-8"))["weight_map"])
    with safe_open(str(base_dir / names[0]), framework="pt", device="cpu") as shard:
        return set(shard.keys())


def check_base(base_dir: Path, keys: set[str], pairs: dict[str, LoraPair]) -> None:
    """Before anything is written: every adapter weight has its base weight (an adapter that
    merges nowhere is an error, never a silent copy of the base), and the base is unquantized."""
    if any(".quant_state." in key for key in keys):
        raise BackendUnavailableError(
            f"{base_dir} is saved already quantized; export merges into the unquantized "
            "checkpoint only",
            hint="use --format adapter, or train on the unquantized checkpoint",
        )
    missing = sorted(set(pairs) - keys)
    if missing:
        raise ModelError(
            f"the adapter changes {len(missing)} weight(s) the base {base_dir} does not have "
            f"(e.g. {missing[0]}); it was not trained on this model"
        )


def merged_shard(
    path: Path,
    pairs: dict[str, LoraPair],
    dtype: Any,
    round_trip: Callable[[Any], Any] | None,
    to_quantize: set[str],
) -> dict[str, Any]:
    """One shard's tensors in `dtype`, each adapted weight with its delta added."""
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="pt", device="cpu") as shard:
        for key in shard.keys():  # noqa: SIM118 - a safetensors handle is not a dict
            tensor = shard.get_tensor(key)
            if tensor.is_floating_point():
                tensor = tensor.to(dtype)
            if round_trip is not None and key in to_quantize:
                tensor = round_trip(tensor)
            if key in pairs:
                tensor = (tensor.float() + pairs[key].delta()).to(dtype)
            tensors[key] = tensor.contiguous()
    return tensors


def merge_shards(
    base_dir: Path,
    adapter_dir: Path,
    output: Path,
    dtype: str,
    quantized: bool = False,
    trust_remote_code: bool = False,
    progress: Callable[[str], None] = print,
) -> int:
    """Write the merged weights of `base_dir` + `adapter_dir` into `output`, shard by shard, in
    `dtype`; returns how many weights the adapter changed."""
    import torch

    pairs = load_adapter(adapter_dir)
    names = shard_names(base_dir)
    check_base(base_dir, base_keys(base_dir, names), pairs)
    round_trip = nf4_round_trip() if quantized else None
    to_quantize = quantized_weights(base_dir, trust_remote_code) if quantized else set()
    total = 0
    for number, name in enumerate(names, 1):
        tensors = merged_shard(
            base_dir / name, pairs, getattr(torch, dtype), round_trip, to_quantize
        )
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        write_shard(tensors, output / name)
        del tensors
        progress(f"aligntune: merged shard {number}/{len(names)} ({name})")
    if len(names) > 1:  # same shards and names; the size changes with the dtype
        index = json.loads((base_dir / INDEX).read_text(encoding="utf-8"))
        index["metadata"] = {**index.get("metadata", {}), "total_size": total}
        (output / INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return len(pairs)
