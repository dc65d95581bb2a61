#!/usr/bin/env bash
# The GPU check without Docker, for any Linux machine with an NVIDIA GPU and Python 3.11:
# two venvs (TRL and Unsloth, each with its own locked stack), each runner's selftest, a smoke
# recipe per algorithm on each backend, then bench/backends_gpu.py (TRL vs Unsloth speed/memory).
# Usage: bash scripts/gpu-check.sh [WORK_DIR [BENCH_ARGS...]]   (about 15 minutes on one H100,
#   mostly installs); BENCH_ARGS go to bench/backends_gpu.py, e.g. --steps 50, or --smoke for a
#   dry run of this whole script on a machine without a GPU (with ALIGNTUNE_UNSLOTH_ALLOW_CPU=1
#   and a stand-in `nvidia-smi` on PATH).
# Prints what it measured; nothing here is a claim until someone has run it and recorded it.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$ROOT/.cache/gpu-check}"
shift $(($# > 0 ? 1 : 0))
PYTHON="${PYTHON:-python3.11}"
mkdir -p "$WORK"
cd "$ROOT"

nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv
PYTHONPATH=packages/unsloth-runner/src:packages/aligntune-core/src "$PYTHON" -m aligntune.runners.unsloth.preflight

STACK=(torch==2.13.0 trl==1.12.0 transformers==5.17.0 datasets==4.8.5 peft==0.21.2 accelerate==1.15.0)
make_venv() {  # NAME: a venv with the shared trl 1.12 stack (PyPI's CUDA torch), aligntune-core
  # and the runners' shared code (neither is on PyPI, so both are installed from this checkout)
  local venv="$WORK/$1"
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  # torch first and alone: later requirements must not move it.
  "$venv/bin/pip" install -q torch==2.13.0
  "$venv/bin/pip" install -q "${STACK[@]}" pyyaml
  "$venv/bin/pip" install -q -e packages/aligntune-core -e packages/runner-common
}
time make_venv trl
"$WORK/trl/bin/pip" install -q -e packages/trl-runner
time make_venv unsloth
# The unsloth lock's CUDA extras; --no-deps keeps pip from replacing torch (FIELD-NOTES).
"$WORK/unsloth/bin/pip" install -q --no-deps -r images/unsloth-runner/requirements-cuda.lock
"$WORK/unsloth/bin/pip" install -q --no-deps -e packages/unsloth-runner
"$WORK/unsloth/bin/pip" check

status=0
for backend in trl unsloth; do
  echo "== $backend selftest"
  "$WORK/$backend/bin/python" -m "aligntune.runners.$backend" selftest || status=1
done

# A smoke recipe per algorithm and backend: the shipped tiny recipes as they are, on the GPU.
for algorithm in sft dpo ppo grpo gspo dapo dr_grpo; do
  recipe="recipes/tiny/$algorithm.yaml"
  [ -f "$recipe" ] || { echo "no $recipe, skipped"; continue; }
  for backend in trl unsloth; do
    if [ "$backend/$algorithm" = unsloth/gspo ]; then continue; fi  # TRL only (registry)
    echo "== smoke $algorithm on $backend"
    if "$WORK/$backend/bin/python" -m "aligntune.runners.$backend" run "$recipe" \
        --output "$WORK/smoke/$backend-$algorithm" --restart >"$WORK/smoke-$backend-$algorithm.log" 2>&1; then
      echo "ok: $(tail -1 "$WORK/smoke-$backend-$algorithm.log")"
    else
      echo "FAILED (log: $WORK/smoke-$backend-$algorithm.log)"; tail -20 "$WORK/smoke-$backend-$algorithm.log"; status=1
    fi
  done
done

echo "== bench/backends_gpu.py"
"$WORK/trl/bin/python" bench/backends_gpu.py --trl-python "$WORK/trl/bin/python" \
  --unsloth-python "$WORK/unsloth/bin/python" --work "$WORK/bench" "$@" || status=1
echo "date: $(date -u +%FT%TZ)"
exit $status
