#!/usr/bin/env bash
# Set up everything (scripts/setup.sh), lint, then run the whole test suite: unit, training
# (real training of the tiny model on CPU) and docker (the real engine and images).
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -m "not docker"
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests also check the unsloth cuda image (on this GPU-less host: its stack and preflight).
ALIGNTUNE_SETUP_WITH="cuda-image ${ALIGNTUNE_SETUP_WITH:-}" bash scripts/setup.sh

start=$SECONDS
echo "== test: lint"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== test: lint took $((SECONDS - start)) s"

start=$SECONDS
echo "== test: pytest"
status=0
.venv/bin/python -m pytest --durations=15 "$@" || status=$?
echo "== test: pytest took $((SECONDS - start)) s (exit $status)"
exit "$status"
