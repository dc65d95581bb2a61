"""aligntune's TRL runner: a validated recipe becomes a TRL training run.

    from aligntune.runners.trl import create_trainer
    run = create_trainer(recipe, plan)
    metrics = run.train()

Heavy libraries (torch, transformers, trl) load on first use, so importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aligntune.core.version import VERSION as __version__

__all__ = ["__version__", "create_trainer"]

if TYPE_CHECKING:
    from aligntune.runners.trl.trainer import create_trainer


def __getattr__(name: str) -> Any:
    if name == "create_trainer":
        from aligntune.runners.trl.trainer import create_trainer

        return create_trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
