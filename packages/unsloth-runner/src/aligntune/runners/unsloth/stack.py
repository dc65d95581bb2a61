"""Import Unsloth before anything else of the training stack, and say which device it found.

Unsloth patches trl, transformers and peft when it is imported; if they were imported first it
warns and some patches do not apply. Every module of this runner that touches the stack imports
this one first, so the order holds however the runner is entered.
"""

from __future__ import annotations

import os
import sys

# Unsloth's CPU fallback is what makes CPU mode possible; never let an inherited setting
# turn it off silently (it would raise deep inside the import instead).
os.environ.pop("UNSLOTH_DISABLE_CPU_FALLBACK", None)
_LATE = sorted(m for m in ("trl", "transformers", "peft") if m in sys.modules)

import unsloth  # noqa: E402  (must precede trl/transformers/peft, see the docstring)

UNSLOTH_VERSION: str = unsloth.__version__
IMPORTED_TOO_LATE: tuple[str, ...] = tuple(_LATE)
"""Stack modules some other code imported before Unsloth (patches may be incomplete)."""


def cuda_available() -> bool:
    """Whether torch (as Unsloth set it up) sees a CUDA GPU."""
    import torch

    return torch.cuda.is_available()
