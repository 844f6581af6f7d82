#!/usr/bin/env bash
# Instruction counts of the pipeline's stages on the emulated Cortex-M4 (QEMU mps2-an386,
# -icount shift=0): front end, model (optimized and reference kernels), drift monitor,
# flash/RAM. Pass --json for one JSON object. Run scripts/setup.sh once before.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/tinydrift bench device "$@"
