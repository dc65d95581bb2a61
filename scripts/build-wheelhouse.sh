#!/usr/bin/env bash
# Download every wheel an image's lock names into a host-side wheelhouse, so `docker build`
# installs with --no-index and needs no network inside the build.
# Usage: bash scripts/build-wheelhouse.sh IMAGE DEVICE [DEST]
#   e.g. bash scripts/build-wheelhouse.sh trl-runner cpu   -> .wheelhouse/trl-runner-cpu/
# Idempotent: a wheelhouse whose stamp matches the locks' sha256 is reused as it is.
set -euo pipefail

IMAGE="${1:?usage: build-wheelhouse.sh IMAGE DEVICE [DEST]}"
DEVICE="${2:?usage: build-wheelhouse.sh IMAGE DEVICE [DEST]}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${3:-$ROOT/.wheelhouse/$IMAGE-$DEVICE}"
LOCK="$ROOT/images/$IMAGE/requirements-$DEVICE.lock"
BUILD_LOCK="$ROOT/images/$IMAGE/requirements-build.lock"
PYTHON="${PYTHON:-python3}"
# The CPU torch build lives on PyTorch's own index, not on PyPI.
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

[ -f "$LOCK" ] || { echo "no lock $LOCK" >&2; exit 1; }
STAMP="$(cat "$LOCK" "$BUILD_LOCK" | sha256sum | cut -d' ' -f1)"
if [ -f "$DEST/.stamp" ] && [ "$(cat "$DEST/.stamp")" = "$STAMP" ]; then
  echo "wheelhouse $DEST is up to date"
  exit 0
fi
mkdir -p "$DEST"

# Wheels for the image's interpreter (CPython 3.11, glibc 2.36 x86_64), whatever the host runs.
# pip does not widen a --platform to older glibc versions, so every manylinux_2_N the base
# image's glibc accepts is named (CUDA 13's wheels use 2_25, 2_27 and 2_28, NCCL 2_18).
platform_args=(--only-binary=:all: --no-deps --implementation cp --python-version 3.11 --abi cp311)
for glibc_minor in $(seq 36 -1 5); do
  platform_args+=(--platform "manylinux_2_${glibc_minor}_x86_64")
done
platform_args+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64
  --platform manylinux1_x86_64 --platform linux_x86_64)

if [ "$DEVICE" = cuda ]; then
  # A machine's pip configuration may add local wheels (find-links) holding torch's +cpu build,
  # which `torch==2.13.0` matches too (pip ignores local version labels): the CUDA wheels come
  # from the package index alone.
  export PIP_CONFIG_FILE=/dev/null
  unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL
fi

download() {
  # Notices about a machine's extra (missing) find-links are noise; errors still show.
  "$PYTHON" -m pip download -q --dest "$DEST" "${platform_args[@]}" "$@" 2>&1 \
    | { grep -v -e '^WARNING: Location' -e '^\[notice\]' || true; } >&2
  return "${PIPESTATUS[0]}"
}

echo "downloading wheels for $IMAGE ($DEVICE) into $DEST ..."
download -r "$BUILD_LOCK"
if ! download -r "$LOCK" 2>"$DEST/.pip.log"; then
  # A host whose pip does not already see the torch+cpu wheel (find-links) gets it from
  # PyTorch's index; asking there only on failure keeps offline mirrors offline.
  echo "retrying with $TORCH_CPU_INDEX as an extra index"
  download --extra-index-url "$TORCH_CPU_INDEX" -r "$LOCK"
fi
rm -f "$DEST/.pip.log"
if [ "$DEVICE" = cuda ] && ls "$DEST" | grep -q '+cpu'; then
  echo "error: CPU builds in the cuda wheelhouse $DEST: $(ls "$DEST" | grep '+cpu')" >&2
  exit 1
fi
echo "$STAMP" > "$DEST/.stamp"
echo "wheelhouse $DEST: $(find "$DEST" -name '*.whl' | wc -l) wheels, $(du -sh "$DEST" | cut -f1)"
