#!/usr/bin/env bash
# Make the local base image aligntune/base:bookworm-py311 from Debian's packages with debootstrap,
# for machines that cannot pull python:3.11-slim-bookworm (no registry). Idempotent: an existing
# image is kept. Usage: bash scripts/make-base-image.sh [TAG]
set -euo pipefail

TAG="${1:-aligntune/base:bookworm-py311}"
if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG already present"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  # A fresh machine may have no apt lists yet: refresh them only when the plain install fails.
  apt-get install -y -q debootstrap >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
fi

# The same Debian mirror apt uses here, so no other network is needed.
MIRROR="${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
ROOTFS="$(mktemp -d /tmp/aligntune-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT

echo "debootstrap bookworm from $MIRROR ..."
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || { tail -20 "$ROOTFS.log"; exit 1; }
# apt lists and docs are not needed in a base image; they only add size.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* \
  "$ROOTFS"/var/cache/apt/*.bin
# `python` as the public python image names it, so one Dockerfile serves both bases.
ln -sf python3 "$ROOTFS/usr/bin/python"
tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' - "$TAG" >/dev/null
rm -f "$ROOTFS.log"
echo "made base image $TAG ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)"
