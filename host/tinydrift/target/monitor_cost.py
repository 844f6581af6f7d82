"""What the monitor costs on the Cortex-M4: instructions per call, counted in QEMU
(mps2-an386, -icount shift=0, where the port's cycle counter counts instructions)."""

from __future__ import annotations

import re
from pathlib import Path

from tinydrift import firmware
from tinydrift.errors import TinydriftError
from tinydrift.target.host_monitor import MONITOR_SRC, monitor_sources, write_config_header
from tinydrift.monitor.config import MonitorConfig

_LINE = re.compile(r"td_monitor_bench (.*)")


def build_bench(config: MonitorConfig, name: str = "bench") -> Path:
    """The benchmark image for the emulated board with `config` compiled in."""
    folder = write_config_header(config, name)
    units = [firmware.Unit(firmware.test_harness("monitor/td_monitor_bench.c")),
             *(firmware.Unit(s) for s in monitor_sources())]
    # The state sized for this config, as the firmware build sizes it.
    defines = {"TD_MONITOR_CONFIG_HEADER": f'"td_monitor_config_{name}.h"',
               "TD_MONITOR_CONFIG_VAR": f"td_monitor_config_{name}",
               "TD_MONITOR_MAX_SUMMARY": str(config.n_summary), "TD_MONITOR_MAX_CLASSES": str(config.n_classes)}
    return firmware.build_arm_image("monitor_bench", units, [MONITOR_SRC, folder], defines)


def measure_cost(config: MonitorConfig) -> dict:
    """Instructions per td_monitor_update, td_summarize_frames (49 frames), td_sensor_update
    (320 samples) and td_monitor_label_feedback on the emulated Cortex-M4, and the state
    size of that build."""
    from tinydrift.target import emulator

    elf = build_bench(config)
    result = emulator.run(elf, icount_shift=0, timeout=60.0)
    text = result.output.decode(errors="replace")
    match = _LINE.search(text)
    if result.exit_code != 0 or match is None:
        raise TinydriftError(f"monitor benchmark failed in QEMU (exit {result.exit_code}): {text[-500:]}")
    fields = dict(item.split("=") for item in match.group(1).split())
    per_cycle = emulator.NANOSECONDS_PER_CYCLE  # instructions per SysTick cycle at shift 0
    out = {"state_bytes": int(fields.pop("state_bytes")), "commission_bytes": int(fields.pop("commission_bytes"))}
    for key, value in fields.items():
        out[key.replace("milli_cycles_per_", "instructions_per_")] = int(value) * per_cycle / 1000
    return out
