"""Unsloth stays in its own process: the TRL runner never loads it, our package loads it late."""

from __future__ import annotations

import subprocess

import pytest
from unsloth_helpers import REPO, RUNNER_SRC, UNSLOTH_PYTHON, needs_unsloth_venv

pytestmark = needs_unsloth_venv

TRL_SRC = REPO / "packages" / "trl-runner" / "src"


def _python(code: str, *paths: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": ":".join(paths)} if paths else None
    return subprocess.run(
        [str(UNSLOTH_PYTHON), "-c", code], capture_output=True, text=True, env=env, check=False
    )


def test_trl_runner_never_imports_unsloth() -> None:
    """With unsloth installed beside it, importing the TRL runner's trainer leaves it unloaded."""
    if not (TRL_SRC / "aligntune" / "runners" / "trl" / "trainer.py").is_file():
        pytest.skip("the TRL runner is not in this checkout")
    code = (
        "import sys, importlib.util\n"
        "assert importlib.util.find_spec('unsloth') is not None\n"
        "import aligntune.runners.trl, aligntune.runners.trl.trainer\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('unsloth', 'unsloth_zoo'))\n"
        "assert not loaded, loaded\n"
    )
    done = _python(code, str(TRL_SRC), str(RUNNER_SRC))
    assert done.returncode == 0, done.stderr[-2000:]


def test_our_package_import_is_cheap() -> None:
    """`import aligntune.runners.unsloth` (what find_spec/preflight touch) loads no stack."""
    code = (
        "import sys\n"
        "import aligntune.runners.unsloth, aligntune.runners.unsloth.preflight\n"
        "heavy = [m for m in ('unsloth', 'torch', 'trl', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr[-2000:]


def test_trainer_imports_unsloth_before_the_stack() -> None:
    """The training module imports unsloth first: trl/transformers/peft were not loaded earlier."""
    code = (
        "from aligntune.runners.unsloth import trainer, stack\n"
        "assert stack.IMPORTED_TOO_LATE == (), stack.IMPORTED_TOO_LATE\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr[-2000:]


def test_gspo_is_refused_before_unsloth_loads(tmp_path) -> None:
    """The registry says GSPO is TRL's: the runner (CLI and Python API) refuses it with exit 3,
    names TRL and writes nothing, before the seconds-long import of Unsloth and torch."""
    recipe = REPO / "recipes" / "tiny" / "gspo.yaml"
    output = tmp_path / "run"
    code = (
        "import sys\n"
        "from aligntune.core.loader import load_recipe\n"
        "from aligntune.core.plan import HostInfo\n"
        "from aligntune.core.selection import select_backend\n"
        "from aligntune.core.errors import BackendUnavailableError\n"
        "from aligntune.runners.unsloth import create_trainer\n"
        "from aligntune.runners.unsloth.cli import main\n"
        f"code = main(['run', {str(recipe)!r}, '--output', {str(output)!r}])\n"
        f"recipe = load_recipe({str(recipe)!r})\n"
        "host = HostInfo(runner_packages=frozenset({'trl'}))\n"
        "plan = select_backend(recipe, host, backend='trl', runtime='in-process')\n"
        "try:\n"
        "    create_trainer(recipe, plan)\n"
        "except BackendUnavailableError as exc:\n"
        "    print('api:', exc)\n"
        "heavy = [m for m in ('unsloth', 'torch', 'trl', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "sys.exit(code)\n"
    )
    done = _python(code)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "Unsloth does not support gspo; TRL does" in done.stderr
    assert "api: backend unsloth does not support gspo; trl does" in done.stdout
    assert not output.exists()
