"""The unsloth image's entrypoint: the GPU preflight, then the runner's command line.

Exec form, no shell: `python -m aligntune.runners.unsloth.entrypoint ARGS` receives signals
directly (under docker's --init), and a host that cannot run the image fails in a second with
the fix instead of deep inside CUDA.
"""

from __future__ import annotations

import sys

from aligntune.runners.unsloth import preflight


def main(argv: list[str] | None = None) -> int:
    """Check the GPU (unless opted out), then run `python -m aligntune.runners.unsloth ARGS`."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        args = ["--help"]
    found = preflight.check()
    if found:
        return preflight.refuse(found)
    from aligntune.runners.unsloth.cli import main as runner_main

    return runner_main(args)


if __name__ == "__main__":
    sys.exit(main())
