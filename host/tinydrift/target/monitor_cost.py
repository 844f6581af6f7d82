"""What the monitor costs on the Cortex-M4: instructions per call, counted in QEMU
(mps2-an386, -icount shift=0, where the port's cycle counter counts instructions)."""

from __future__ import annotations

import re
from pathlib import Path

from tinydrift import firmware
from tinydrift.errors import TinydriftError
from tinydrift.target.host_monitor import MONITOR_SRC, monitor_sources, write_config_header
from tinydrift.frontend import NUM_CHANNELS
from tinydrift.monitor.config import MonitorConfig
from tinydrift.monitor.twin import image_summary_length
from tinydrift.wakeword.monitor import summary_length

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


# Each app's input summary as the bench times it, by the summary length it gives the monitor:
# a keyword spotter's means of 49 frames x 40 channels and its window's loudness and quiet level; a wake-word
# detector's 3 frames' means, floor counts, loudness, tilt and quiet level; a camera's of one 48x48 RGB image on a
# 3x3 grid.
SUMMARIES = {"summarize": NUM_CHANNELS + 2, "summarize_stream": summary_length(NUM_CHANNELS),
             "summarize_image48": image_summary_length(3)}


def measure_cost(config: MonitorConfig) -> dict:
    """Instructions per td_monitor_update, per input summary of each app (SUMMARIES),
    td_sensor_update (320 samples) and td_monitor_label_feedback on the emulated Cortex-M4,
    the state size of that build, and `config_summary`: which of the summaries gives a
    summary of this config's length (None if none does)."""
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
    out["config_summary"] = next((name for name, n in SUMMARIES.items() if n == config.n_summary), None)
    return out
