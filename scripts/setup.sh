#!/usr/bin/env bash
# One unattended set-up for a fresh Debian machine: apt packages, a virtual environment,
# tinydrift in editable mode. Idempotent: a second run only checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  espeak-ng                 # synthetic speech for the embedded default data set
  gcc-arm-none-eabi         # the device toolchain
  libnewlib-arm-none-eabi
  qemu-system-arm           # the emulated board (mps2-an386)
  clang                     # libFuzzer targets for the device-side parsers
  libclang-rt-14-dev        # ... and clang's fuzzer/sanitizer runtimes
  mosquitto                 # fleets: the MQTT 5 broker (started privately, never as a service)
  postgresql                # fleets: the collector's database (initdb/postgres run privately)
  chromium                  # fleets: the dashboard's test in a real headless browser
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.12 python3.11 python3; do
    # 2>/dev/null: a pyenv shim for a version pyenv does not have says so on stderr and fails
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON="$candidate"; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "setup: Python >= 3.11 is needed" >&2; exit 1; }

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.tinydrift-installed
want="$(cat pyproject.toml setup.py requirements.lock | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing the Python package with the versions pinned in requirements.lock"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c requirements.lock -e ".[train,device,test,bench,wakeword,fleet]"
  echo "$want" > "$stamp"
fi
# PlatformIO offline: the emulated board's local platform, toolchain and SCons packages.
scripts/setup_platformio.sh >/dev/null
echo "setup: ready (.venv/bin/tinydrift)"
