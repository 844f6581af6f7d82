#!/usr/bin/env bash
# Make PlatformIO build and boot the emulated board offline (run by the set-up after the
# venv exists). Idempotent: a second run only checks and returns in about a second.
#   - PlatformIO and SCons come from the venv (pyproject's `device` extra; installed here
#     with the same pins if missing);
#   - build/platformio (git-ignored, named by core_dir in firmware/platformio.ini) gets the
#     tool-scons and arm-none-eabi toolchain packages pio would otherwise download.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || { echo "setup_platformio: run scripts/setup.sh first (no .venv)" >&2; exit 1; }
if [ ! -x .venv/bin/pio ] || ! .venv/bin/python -c 'import SCons' 2>/dev/null; then
  echo "setup_platformio: installing platformio==6.2.0 and scons==4.11.1 into .venv"
  .venv/bin/python -m pip install -q "platformio==6.2.0" "scons==4.11.1"
fi
exec .venv/bin/python -m tinydrift.target.platformio prepare
