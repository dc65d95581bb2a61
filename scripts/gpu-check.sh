#!/usr/bin/env bash
# The GPU check without Docker: each runner's selftest, the benchmark (bench/backends_gpu.py:
# TRL vs Unsloth, same recipes and data, random Qwen2.5-shaped models, no download) and every
# tiny recipe once through each runner, writing gpu-results.json and gpu-results.md.
#
#   bash scripts/gpu-check.sh prepare [--python 3.12] [--host-packages FILE] [--out DIR]
#       on any machine with pip and PyPI: the wheels the GPU host lacks, in bundles of at most
#       60 MiB under DIR (default .cache/gpu-bundles; see scripts/gpu_bundle.py)
#   bash scripts/gpu-check.sh run [--smoke] [BENCH_ARGS...]
#       on the GPU host, no network: verify and install the bundles into a private folder, then
#       the check with the host's python3 and its own torch (about 8 minutes on one H200)
#   bash scripts/gpu-check.sh venv [WORK_DIR [BENCH_ARGS...]]
#       on a GPU machine with PyPI and Python 3.11: two venvs with the locked stacks, then the
#       same check (what the gpu workflow runs)
#
# Environment: GPU_CHECK_WORK (the work dir, default .cache/gpu-check), GPU_CHECK_BUNDLES (the
# bundles, default .cache/gpu-bundles), PYTHON (the interpreter). --smoke is the same script as a
# dry run on a machine without a GPU (tiny model, fp32; with ALIGNTUNE_UNSLOTH_ALLOW_CPU=1 and
# a stand-in `nvidia-smi` on PATH). Nothing here is a claim until someone has run it on a GPU.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
command="${1:-}"
shift $(($# > 0 ? 1 : 0))
BUNDLES="${GPU_CHECK_BUNDLES:-$ROOT/.cache/gpu-bundles}"

check() {  # TRL_PYTHON UNSLOTH_PYTHON WORK BENCH_ARGS...: selftests, then the benchmark + recipes
  local trl="$1" unsloth="$2" work="$3" status=0
  shift 3
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv
  "$unsloth" -m aligntune.runners.unsloth.preflight
  for backend in trl unsloth; do
    local python="$trl"
    [ "$backend" = unsloth ] && python="$unsloth"
    echo "== $backend selftest"
    "$python" -m "aligntune.runners.$backend" selftest || status=1
  done
  echo "== bench/backends_gpu.py"
  "$trl" bench/backends_gpu.py --trl-python "$trl" --unsloth-python "$unsloth" \
    --work "$work" "$@" || status=1
  echo "date: $(date -u +%FT%TZ)"
  return $status
}

case "$command" in
  prepare)
    out="$BUNDLES" args=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --out) out="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
      esac
    done
    exec "${PYTHON:-python3}" scripts/gpu_bundle.py prepare --out "$out" "${args[@]}"
    ;;
  run)
    python="${PYTHON:-python3}"
    work="${GPU_CHECK_WORK:-$ROOT/.cache/gpu-check}"
    private="$work/site"
    mkdir -p "$work"
    "$python" -m pip list --format=freeze >"$work/host-packages.txt"  # for the next `prepare`
    if [ ! -f "$private/.installed" ] || ! cmp -s "$private/.installed" "$BUNDLES/bundle-01/manifest.json"; then
      rm -rf "$private"
      "$python" scripts/gpu_bundle.py install --bundles "$BUNDLES" --target "$private"
      cp "$BUNDLES/bundle-01/manifest.json" "$private/.installed"
    fi
    PYTHONPATH="$private:$(ls -d "$ROOT"/packages/*/src | paste -sd:)"
    export PYTHONPATH HF_HUB_OFFLINE=1  # no network there: never wait on the hub
    echo "== requirements the host's own packages miss (pip check; informative)"
    "$python" -m pip check || true
    check "$python" "$python" "$work/bench" "$@"
    ;;
  venv)
    WORK="${1:-${GPU_CHECK_WORK:-$ROOT/.cache/gpu-check}}"
    shift $(($# > 0 ? 1 : 0))
    PYTHON="${PYTHON:-python3.11}"
    mkdir -p "$WORK"
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
    # QLoRA on the TRL backend: bitsandbytes at the unsloth lock's pin, torch left alone.
    "$WORK/trl/bin/pip" install -q --no-deps "$(grep '^bitsandbytes==' images/unsloth-runner/requirements-cuda.lock)"
    time make_venv unsloth
    # The unsloth lock's CUDA extras; --no-deps keeps pip from replacing torch (FIELD-NOTES).
    "$WORK/unsloth/bin/pip" install -q --no-deps -r images/unsloth-runner/requirements-cuda.lock
    "$WORK/unsloth/bin/pip" install -q --no-deps -e packages/unsloth-runner
    "$WORK/unsloth/bin/pip" check
    check "$WORK/trl/bin/python" "$WORK/unsloth/bin/python" "$WORK/bench" "$@"
    ;;
  *)
    echo "usage: bash scripts/gpu-check.sh prepare|run|venv [ARGS...] (see the top of this file)" >&2
    exit 2
    ;;
esac
