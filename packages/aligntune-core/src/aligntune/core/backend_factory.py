"""The original AlignTune import path of the Python API, kept so its users' code runs unchanged:

    from aligntune.core.backend_factory import BackendType, create_sft_trainer

The API itself lives with the runners (`aligntune.runners.common.api`): building a trainer needs
the training stack, and core never imports torch or a runner. Each name is forwarded on first use,
so importing this module stays cheap and torch-free.
"""

from __future__ import annotations

import importlib
from typing import Any

from aligntune.core.backends import BACKENDS
from aligntune.core.errors import RunnerNotInstalledError

API_MODULE = "aligntune.runners.common.api"
FORWARDED = (
    "BackendType",
    "create_rl_trainer",
    "create_sft_trainer",
    "create_trainer_from_recipe",
    "list_backends",
)
"""The API names this module forwards."""


def __getattr__(name: str) -> Any:
    if name not in FORWARDED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        api = importlib.import_module(API_MODULE)
    except ModuleNotFoundError:
        raise RunnerNotInstalledError(
            "the Python API needs a runner in this environment: "
            + " or ".join(backend.install_command for backend in BACKENDS)
        ) from None
    return getattr(api, name)
