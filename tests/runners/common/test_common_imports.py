"""The shared runner package stays cheap to import and never touches Unsloth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COMMON_SRC = Path(__file__).resolve().parents[3] / "packages/runner-common/src"


def test_importing_the_package_loads_no_stack() -> None:
    """The Unsloth runner must import unsloth before trl/transformers/torch: nothing here does."""
    code = (
        "import sys\n"
        "import aligntune.runners.common\n"
        "from aligntune.runners.common import backend, cli, errors, settings\n"
        "import aligntune.runners.trl.cli\n"
        "heavy = [m for m in ('torch', 'trl', 'transformers', 'unsloth') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_no_module_imports_unsloth() -> None:
    """Only the Unsloth runner may import unsloth (it patches trl/transformers on import)."""
    offenders = [
        path.name
        for path in COMMON_SRC.rglob("*.py")
        if any(
            line.lstrip().startswith(("import unsloth", "from unsloth"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []
