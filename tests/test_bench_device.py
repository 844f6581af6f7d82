"""`tinydrift bench device`: one run of the bench firmware in QEMU, its JSON checked for
completeness and internal consistency. Speed targets are not asserted here: the benchmark
prints them (scripts/bench_device.sh)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from tinydrift import firmware
from tinydrift.codegen.model_c import plan_model
from tinydrift.codegen.model_lowering import KernelCall
from tinydrift.target import bench, emulator
from tinydrift.cli.main import main

MODEL_DIR = firmware.REPO_ROOT / "models" / "kws"
REQUIRED = {
    "frontend_instructions", "model_instructions", "instructions_per_mac", "monitor_instructions",
    "monitor_share", "flash_bytes", "ram_bytes", "arena_bytes", "tflm_arena_bytes", "capture_frames_per_s",
    "reference_model_instructions",
}

pytestmark = [
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which(emulator.QEMU) is None,
                       reason="arm-none-eabi-gcc or qemu-system-arm not installed"),
    pytest.mark.skipif(not (MODEL_DIR / "model_int8.tflite").is_file(), reason="models/kws is not trained"),
]


@pytest.fixture(scope="module")
def figures() -> dict:
    result = CliRunner().invoke(main, ["bench", "device", "--model-dir", str(MODEL_DIR), "--json",
                                              "--parse-frames", "5000"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.slow  # the whole bench in QEMU (~30 s): a benchmark's figures, checked in the slow tier
def test_json_has_every_figure(figures):
    assert REQUIRED <= set(figures)
    assert set(figures) == set(bench.BENCH_KEYS)
    assert all(figures["checks"].values()), figures["checks"]


@pytest.mark.slow
def test_counts_are_positive_and_consistent(figures):
    for key in ("frontend_instructions", "model_instructions", "reference_model_instructions",
                "monitor_instructions", "summarize_instructions", "monitor_update_instructions"):
        assert isinstance(figures[key], int) and figures[key] > 0, key
    macs = plan_model((MODEL_DIR / "model_int8.tflite").read_bytes(), "kws").macs
    assert figures["macs"] == macs
    assert figures["instructions_per_mac"] == pytest.approx(figures["model_instructions"] / macs)
    assert figures["reference_instructions_per_mac"] == pytest.approx(figures["reference_model_instructions"] / macs)
    assert figures["optimized_speedup"] == pytest.approx(
        figures["reference_model_instructions"] / figures["model_instructions"])
    monitor = figures["monitor_instructions"]
    assert monitor == pytest.approx(figures["summarize_instructions"] + figures["monitor_update_instructions"], abs=1)
    assert figures["monitor_share"] == pytest.approx(
        monitor / (figures["frontend_instructions"] + figures["model_instructions"] + monitor), rel=1e-3)
    sensor = figures["sensor_instructions"]
    assert isinstance(sensor, int) and sensor > 0
    assert figures["monitor_with_sensor_share"] == pytest.approx(
        (monitor + sensor) / (figures["frontend_instructions"] + figures["model_instructions"] + monitor + sensor),
        rel=1e-3)
    # Counts are multiples of the 40 instructions of one SysTick cycle.
    assert figures["model_instructions"] % emulator.NANOSECONDS_PER_CYCLE == 0


@pytest.mark.slow
def test_mlperf_dscnn_figures_add_up(figures):
    """MLPerf Tiny's keyword DS-CNN: instructions from -icount, the cycle estimate within its
    band of branch refills, and the per-operator rows summing to the whole."""
    assert figures["mlperf_dscnn_macs"] == 2_656_768
    instructions, cycles = figures["mlperf_dscnn_instructions"], figures["mlperf_dscnn_estimated_cycles"]
    assert figures["mlperf_dscnn_instructions_per_mac"] == pytest.approx(instructions / 2_656_768)
    assert figures["mlperf_dscnn_estimated_cycles_per_mac"] == pytest.approx(cycles / 2_656_768)
    low, high = figures["mlperf_dscnn_estimated_cycles_range"]
    assert instructions < low < cycles < high < 2 * instructions
    ops = figures["mlperf_dscnn_ops"]
    assert [op["op"] for op in ops[:3]] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"] and len(ops) == 13
    assert sum(op["estimated_cycles"] for op in ops) == cycles
    assert sum(op["macs"] for op in ops) == figures["mlperf_dscnn_macs"]
    assert abs(sum(op["instructions"] for op in ops) - instructions) <= 200
    assert abs(sum(figures["mlperf_dscnn_instruction_mix"].values()) - instructions) <= 200
    assert 0 < figures["mlperf_dscnn_fetch_misses"] * 4 * 5 < cycles / 10  # the hot loops fit a 1 KB cache
    assert "estimated Cortex-M4 cycles" in bench.format_report(figures)


@pytest.mark.slow
def test_model_estimate_per_operator_adds_up(figures):
    """The bench's model in estimated cycles: one row per kernel call in the model's order,
    summing to the whole, which lies between its instructions and the refill band's top."""
    plan = plan_model((MODEL_DIR / "model_int8.tflite").read_bytes(), "kws")
    ops, cycles = figures["model_ops"], figures["model_estimated_cycles"]
    calls = [step for step in plan.steps if isinstance(step, KernelCall)]
    assert [op["op"] for op in ops[:-1]] == [call.op.opcode for call in calls] and ops[-1]["kernel"] is None
    assert sum(op["estimated_cycles"] for op in ops) == cycles
    assert sum(op["macs"] for op in ops) == figures["macs"]
    low, high = figures["model_estimated_cycles_range"]
    assert figures["model_instructions"] * 0.95 < low < cycles < high
    assert "model, estimated Cortex-M4 cycles" in bench.format_report(figures)


@pytest.mark.slow
def test_sizes_come_from_the_images(figures):
    header = (MODEL_DIR / "include" / "td_model_kws.h").read_text()
    assert figures["arena_bytes"] == int(re.search(r"TD_KWS_ARENA_BYTES (\d+)", header).group(1))
    assert figures["tflm_arena_bytes"] > 0
    graph = plan_model((MODEL_DIR / "model_int8.tflite").read_bytes(), "kws").graph
    weights = sum(t.nbytes for t in graph.tensors if t.is_constant)
    assert figures["flash_bytes"] > weights  # the model's constants live in flash
    assert figures["ram_bytes"] > figures["arena_bytes"]  # the arena is static RAM
    assert 0 < figures["stack_used_bytes"] < 32 * 1024
    assert 0 < figures["monitor_commission_bytes"] < figures["monitor_state_bytes"]
    assert figures["capture_frames_per_s"] > 0
    assert figures["size_source"].startswith(("app image", "bench pipeline image"))
    if figures["size_source"].startswith("app image"):
        elf = bench.IMAGE_DIR / "app-pio" / "build" / "mps2_an386" / "firmware.elf"
        names = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
        assert "td_kws_invoke" in names and "td_conv_widened_s8_m4" in names  # the app with the optimized kernels
        sizes = firmware.elf_sizes(elf)
        assert (sizes["flash_bytes"], sizes["ram_bytes"]) == (figures["flash_bytes"], figures["ram_bytes"])
        assert figures["app_state_bytes"] == bench.symbol_bytes(elf, bench.APP_STATE_SYMBOL)
        assert figures["app_state_bytes"] > figures["monitor_state_bytes"]  # the monitor is part of the app's state


def test_elf_sizes_match_arm_none_eabi_size():
    elf, _ = bench.build_bench(MODEL_DIR, reference=False)
    sizes = firmware.elf_sizes(elf)
    berkeley = subprocess.run(["arm-none-eabi-size", "-B", "-d", str(elf)], capture_output=True, text=True,
                              check=True).stdout.splitlines()[1].split()
    text, data, bss = map(int, berkeley[:3])
    assert sizes["flash_bytes"] == text + data
    assert sizes["ram_bytes"] == data + bss - sizes["stack_reserved_bytes"]


@pytest.mark.slow
def test_table_for_people(figures):
    text = bench.format_report(figures)
    assert f"{figures['model_instructions']:,}" in text and "per MAC" in text and "checks:" in text


@pytest.mark.slow  # builds the bench pipeline image (~23 s)
def test_sizes_fall_back_to_the_pipeline_image_when_the_app_cannot_be_built(monkeypatch):
    def no_app(model_dir):
        raise bench.TinydriftError("PlatformIO (`pio`) not found: run scripts/setup.sh")

    monkeypatch.setattr(bench, "build_app", no_app)
    figures = bench.run_bench(MODEL_DIR, parse_frames=2000)
    assert figures["size_source"].startswith("bench pipeline image") and "pio" in figures["size_source"]
    assert figures["app_state_bytes"] is None
    elf, _ = bench.build_bench(MODEL_DIR, reference=False)
    sizes = firmware.elf_sizes(elf)
    assert (sizes["flash_bytes"], sizes["ram_bytes"]) == (figures["flash_bytes"], figures["ram_bytes"])


def test_a_header_of_an_older_export_is_refused_before_the_build(tmp_path):
    """A folder exported before the monitor's ABI changed: its config header's #error would
    end the bench's compile in the compiler's output."""
    old = tmp_path / "old"
    shutil.copytree(MODEL_DIR, old, ignore=shutil.ignore_patterns("*.keras"))
    header = old / "include" / "td_monitor_config_kws.h"
    header.write_text(re.sub(r"(?m)^#if TD_MONITOR_ABI_VERSION != \d+$", "#if TD_MONITOR_ABI_VERSION != 6",
                             header.read_text()))
    with pytest.raises(bench.TinydriftError, match=r"generated for the drift monitor's ABI version 6.*"
                                                   r"run `tinydrift export --model"):
        bench._monitor_config_header(old)


def test_missing_model_is_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["bench", "device", "--model-dir", str(tmp_path), "--json"])
    assert result.exit_code == 1
    assert "model_int8.tflite not found" in result.output and "Traceback" not in result.output
