#!/usr/bin/env bash
# Set everything up, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Two workers (pytest-xdist), each taking a whole test file at a time, so that a file's
# module fixtures are built once; `-n 0` after the script's name runs in one process.
# The default tier (what CI runs) leaves out tests marked slow; --all runs them too.
workers=(-n 2 --dist loadfile)
if [ "${1:-}" = "--all" ]; then
  shift
  exec .venv/bin/python -m pytest "${workers[@]}" -m "slow or not slow" "$@"
fi
exec .venv/bin/python -m pytest "${workers[@]}" "$@"
