"""What the image tests share: running `docker`, and copies of the tiny SFT recipe."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny"


def docker(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """`docker ARGS`; its output is shown only when a test fails."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    print(f"$ docker {' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def tiny_sft_copy(tmp_path: Path, name: str, algorithm: str = "sft", **training: Any) -> Path:
    """The tiny recipe folder copied under tmp_path, its recipe of `algorithm` (SFT by default)
    saved as NAME with these `training` settings changed; the new recipe's path."""
    folder = tmp_path / "recipe"
    shutil.copytree(TINY, folder, ignore=shutil.ignore_patterns("__pycache__"))
    recipe = yaml.safe_load((TINY / f"{algorithm}.yaml").read_text())
    recipe["training"].update(training)
    (folder / name).write_text(yaml.safe_dump(recipe))
    return folder / name
