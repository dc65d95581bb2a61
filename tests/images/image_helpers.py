"""What the image tests share: running `docker` with its output kept for failing tests."""

from __future__ import annotations

import subprocess


def docker(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """`docker ARGS`; its output is shown only when a test fails."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    print(f"$ docker {' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done
