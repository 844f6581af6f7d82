#!/usr/bin/env bash
# Set everything up, then run the main job end to end on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/tinydrift demo "$@"
