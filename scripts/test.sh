#!/usr/bin/env bash
# Set everything up, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The default tier (what CI runs) leaves out tests marked slow; --all runs them too.
if [ "${1:-}" = "--all" ]; then
  shift
  exec .venv/bin/python -m pytest -m "slow or not slow" "$@"
fi
exec .venv/bin/python -m pytest "$@"
