"""A file beside the recipe named like a standard module (`copy.py`, `logging.py`) is the user's
business: it must not hide the standard library from the launcher, the runner or its reward
imports. `aligntune run --runtime local`, started from inside that folder, trains."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.training


def test_stdlib_named_files_beside_the_recipe_change_nothing(
    tiny_recipe: Callable[..., Path], tiny_dir: Path, tmp_path: Path
) -> None:
    (tiny_dir / "copy.py").write_text("def backup(source, target):\n    pass\n")
    (tiny_dir / "logging.py").write_text("raise SystemExit('the wrong logging module')\n")
    recipe = tiny_recipe("grpo", training={"max_steps": 2})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        # The console script, as users start it (`python -m` would put this folder first itself).
        [str(Path(sys.executable).with_name("aligntune")), "run", recipe.name, "--runtime", "local",
         "-q", "--output", str(tmp_path / "run")],
        cwd=tiny_dir, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert (tmp_path / "run" / "final").is_dir()
