"""Make the tiny random Qwen2 model and tokenizer that the shipped tiny recipes and tests use.

The logic lives in the shared runner package (`aligntune.runners.common.tiny`), which both
runners' `selftest` also uses.
Usage: python scripts/make_tiny_model.py OUTPUT_DIR [--data DIR] [--seed N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aligntune.runners.common.tiny import make_model


def main() -> None:
    """Parse arguments and write the model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    default_data = Path(__file__).parent.parent / "recipes/tiny/data"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_model(args.output, args.data, args.seed))


if __name__ == "__main__":
    main()
