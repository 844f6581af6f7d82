"""What the monitor costs on the Cortex-M4: instructions per call, counted in QEMU
(mps2-an386, -icount shift=0, where the port's cycle counter counts instructions)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .. import native
from ..errors import TinydriftError
from .c_monitor import MONITOR_SRC, SHIM_DIR, monitor_sources, write_config_header
from .config import MonitorConfig
from .header import config_hash

PORT_DIR = native.REPO_ROOT / "firmware" / "port" / "mps2_an386"
CORE_SRC = native.FIRMWARE_LIB / "src"
CPU_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
_LINE = re.compile(r"td_monitor_bench (.*)")


def build_bench(config: MonitorConfig, name: str = "bench") -> Path:
    """The benchmark image for mps2-an386 with `config` compiled in."""
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        raise TinydriftError("arm-none-eabi-gcc not found: run scripts/setup.sh (it installs the cross compiler)")
    folder = write_config_header(config, name)
    elf = native.BUILD_DIR / "monitor_bench" / f"td_monitor_bench-{config_hash(config)[:16]}.elf"
    sources = [SHIM_DIR / "td_monitor_bench.c", *monitor_sources(), *sorted(PORT_DIR.glob("*.c"))]
    command = [
        gcc, *CPU_FLAGS, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections",
        f"-I{MONITOR_SRC}", f"-I{CORE_SRC}", f"-I{PORT_DIR}", f"-I{folder}",
        f'-DTD_MONITOR_CONFIG_HEADER="td_monitor_config_{name}.h"', f"-DTD_MONITOR_CONFIG_VAR=td_monitor_config_{name}",
        "-DTD_BOARD_MPS2_AN386",
        *map(str, sources),
        "-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections", f"-T{PORT_DIR / 'mps2_an386.ld'}",
        "-o", str(elf),
    ]
    elf.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TinydriftError(f"monitor benchmark build failed: {' '.join(command)}\n{proc.stderr}")
    return elf


def measure_cost(config: MonitorConfig) -> dict:
    """Instructions per td_monitor_update, td_summarize_frames (49 frames), td_sensor_update
    (320 samples) and td_monitor_label_feedback on the emulated Cortex-M4, and the state
    size of that build."""
    from ..device import emulator

    elf = build_bench(config)
    result = emulator.run(elf, icount_shift=0, timeout=60.0)
    text = result.output.decode(errors="replace")
    match = _LINE.search(text)
    if result.exit_code != 0 or match is None:
        raise TinydriftError(f"monitor benchmark failed in QEMU (exit {result.exit_code}): {text[-500:]}")
    fields = dict(item.split("=") for item in match.group(1).split())
    per_cycle = emulator.NANOSECONDS_PER_CYCLE  # instructions per SysTick cycle at shift 0
    out = {"state_bytes": int(fields.pop("state_bytes"))}
    for key, value in fields.items():
        out[key.replace("milli_cycles_per_", "instructions_per_")] = int(value) * per_cycle / 1000
    return out
