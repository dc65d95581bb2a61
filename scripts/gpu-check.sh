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
    make_venv() {  # NAME: a venv with the NAME-runner cuda image's own lock, installed in one
      # pass with --no-deps (nothing can swap torch), then aligntune's packages from this checkout
      local venv="$WORK/$1"
      [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
      "$venv/bin/pip" install -q --no-deps -r "images/$1-runner/requirements-cuda.lock"
      "$venv/bin/pip" install -q --no-deps \
        -e packages/aligntune-core -e packages/runner-common -e "packages/$1-runner"
      "$venv/bin/pip" check
    }
    time make_venv trl
    time make_venv unsloth
    check "$WORK/trl/bin/python" "$WORK/unsloth/bin/python" "$WORK/bench" "$@"
    ;;
  *)
    echo "usage: bash scripts/gpu-check.sh prepare|run|venv [ARGS...] (see the top of this file)" >&2
    exit 2
    ;;
esac
