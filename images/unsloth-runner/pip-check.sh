#!/bin/sh
# `pip check`, allowing only the named packages to be absent: the cpu image leaves out the CUDA
# builds that unsloth declares unconditionally but its CPU mode never imports (README.md says
# why, package by package). Any other problem, or an allowed one that is installed after all,
# still fails. Usage: pip-check.sh [PACKAGE ...]   (no argument: plain `pip check`)
set -u
out="$(pip check 2>&1)"
status=$?
if [ $# -eq 0 ]; then
  echo "$out"
  exit $status
fi
pattern="requires ($(echo "$*" | tr ' ' '|')), which is not installed\.\$"
left="$(printf '%s\n' "$out" | grep -v -E "$pattern" | grep -v -e '^No broken requirements' -e '^$')"
if [ -n "$left" ]; then
  printf '%s\n' "$left"
  exit 1
fi
for name in "$@"; do
  if pip show -q "$name" >/dev/null 2>&1; then
    echo "$name is installed although this image leaves it out"
    exit 1
  fi
done
echo "pip check: ok, except the packages left out on purpose: $*"
