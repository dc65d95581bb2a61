"""A quantized (QLoRA) load needs bitsandbytes, which only the cuda images install: where it is
missing the loader says so and names the image, before transformers is asked for anything.
(tests/images/test_trl_cuda_image.py loads and trains 4 bit in the trl cuda image.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from aligntune.core.backends import BACKENDS
from aligntune.core.errors import BackendUnavailableError
from aligntune.runners.common.models import load_causal_lm


def test_without_bitsandbytes_a_4bit_load_names_the_cuda_image(tiny_model: Path) -> None:
    assert importlib.util.find_spec("bitsandbytes") is None  # the host environment lacks it
    init = {"dtype": "float32", "quantization": "4bit"}
    with pytest.raises(BackendUnavailableError) as refused:
        load_causal_lm(str(tiny_model), init, "model.name_or_path")
    assert str(refused.value) == (
        "model.quantization '4bit' needs bitsandbytes, which this environment does not install"
    )
    assert refused.value.hint is not None and refused.value.hint.startswith("the cuda images")
    assert all(b.build_command("cuda") in refused.value.hint for b in BACKENDS)
