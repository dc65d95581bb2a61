#!/usr/bin/env bash
# Set up everything (scripts/setup.sh), lint, then run the whole test suite: unit, training
# (real training of the tiny model on CPU) and docker (the real engine and images).
#   bash scripts/test.sh              what CI runs (.ci/run)
#   bash scripts/test.sh --fast       the inner loop: lint and the unit tier (no docker, no
#                                     training), about a minute; sets up only the Python envs
# Extra arguments go to pytest, e.g.: bash scripts/test.sh --fast tests/core -k recipe
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--fast" ]]; then
  shift
  if [[ ! -x .venv/bin/pytest || ! -x .venv-unsloth/bin/python ]]; then
    ALIGNTUNE_SETUP_SKIP="docker images ${ALIGNTUNE_SETUP_SKIP:-}" bash scripts/setup.sh
  fi
  set -- -m "not docker and not training" "$@"
else
  # The tests also check the cuda images (on this GPU-less host: their stacks, preflight, QLoRA)
  # and pull released images from a local registry, and submit jobs to a one-node Slurm cluster.
  ALIGNTUNE_SETUP_WITH="cuda-image registry slurm ${ALIGNTUNE_SETUP_WITH:-}" bash scripts/setup.sh
fi

start=$SECONDS
echo "== test: lint"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== test: lint took $((SECONDS - start)) s"

start=$SECONDS
echo "== test: types (mypy, configured in pyproject.toml)"
.venv/bin/mypy
echo "== test: types took $((SECONDS - start)) s"

start=$SECONDS
echo "== test: pytest"
status=0
.venv/bin/python -m pytest --durations=15 "$@" || status=$?
echo "== test: pytest took $((SECONDS - start)) s (exit $status)"
exit "$status"
