"""The optimized kernels (firmware/lib/tinydrift/src/kernels/optimized/) against the
reference kernels and TFLite Micro, on the host (their plain-C DSP helpers) and in QEMU
(the Cortex-M4's DSP instructions and asm loops):

- the single-op models of test_kernels.py and the KWS model, generated with
  TD_KERNELS_OPTIMIZED=1, equal TFLite Micro's outputs element for element;
- firmware/test/m4/kernels_check_main.c draws thousands of random operators (shapes,
  strides, dilations, paddings, offsets, multipliers, shifts, biases, activation ranges)
  and compares every output byte of optimized and reference kernels: on the host under
  ASan/UBSan and in QEMU, on the same cases;
- the KWS model runs in QEMU on real and synthetic inputs and equals TFLite Micro;
- the requantization shortcuts equal gemmlowp's formulas on values models rarely reach.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers_tflite import structured_int8_inputs, tflite_models
from test_kernels import CASES, _depthwise_3x3_cases, _pointwise_cases, random_inputs
from tinydrift import atomic, firmware
from tinydrift.codegen.model_c import generate_model_c, plan_model
from tinydrift.target.host_model import HostModel, _batch_harness, run_tflm
from tinydrift.target import bench, emulator
from tinydrift.target.bench import build_model_check

KERNELS = firmware.LIB_SRC / "kernels"
OPTIMIZED = KERNELS / "optimized"
KWS_TFLITE = firmware.REPO_ROOT / "models" / "kws" / "model_int8.tflite"
ARM_GCC = "arm-none-eabi-gcc"
needs_arm = pytest.mark.skipif(shutil.which(ARM_GCC) is None or shutil.which(emulator.QEMU) is None,
                               reason="arm-none-eabi-gcc or qemu-system-arm not installed")
needs_kws = pytest.mark.skipif(not KWS_TFLITE.is_file(), reason=f"{KWS_TFLITE} not trained")

OPTIMIZED_KINDS = {"conv", "depthwise", "dense"}


def build_host_models_optimized(models: dict[str, bytes]) -> dict[str, HostModel]:
    """Like model_runner.build_host_models, with TD_KERNELS_OPTIMIZED=1: the generated C
    calls the optimized kernels, whose DSP helpers are plain C on the host."""
    digest = hashlib.sha256(b"".join(name.encode() + data for name, data in sorted(models.items())))
    out_dir = firmware.HOST_BUILD_DIR / "models_optimized" / digest.hexdigest()[:16]
    sources = []
    for name, data in models.items():
        header, source = generate_model_c(data, name)
        atomic.write_text(out_dir / f"td_model_{name}.h", header)
        atomic.write_text(out_dir / f"td_model_{name}.c", source)
        atomic.write_text(out_dir / f"run_batch_{name}.c", _batch_harness(name))
        sources += [out_dir / f"td_model_{name}.c", out_dir / f"run_batch_{name}.c"]
    library = firmware.compile_host(sources + firmware.stage_sources("kernels"), include_dirs=[KERNELS.parent, out_dir],
                               defines={"TD_KERNELS_OPTIMIZED": 1}, optimize="-O2")
    lib = ctypes.CDLL(str(library))
    result = {}
    for name, data in models.items():
        plan = plan_model(data, name)
        result[name] = HostModel(lib, name, plan.input.num_elements, plan.output.num_elements)
    return result


# --- single-op models and the KWS model on the host -------------------------------------

SINGLE_OP = [(case_id, spec) for case_id, spec in CASES if spec["kind"] in OPTIMIZED_KINDS]


@pytest.fixture(scope="module")
def single_op_models():
    data = tflite_models([spec for _, spec in SINGLE_OP])
    models = {case_id: model for (case_id, _), model in zip(SINGLE_OP, data)}
    return models, build_host_models_optimized(models)


def test_generated_single_op_models_with_optimized_kernels_match_tflite_micro(single_op_models):
    models, hosts = single_op_models
    checked = 0
    for case_id, spec in SINGLE_OP:
        host = hosts[case_id]
        inputs = random_inputs(spec["seed"], 200, host.input_size)
        ours = host.run(inputs)
        expected = run_tflm(models[case_id], inputs)
        mismatches = int(np.count_nonzero(ours != expected))
        assert mismatches == 0, f"{case_id} (seed {spec['seed']}): {mismatches} of {ours.size} values differ"
        checked += ours.size
    assert len(SINGLE_OP) >= 30 and checked > 50_000


def kws_inputs(count_structured: int = 100, count_real: int = 60) -> np.ndarray:
    """Feature maps for the KWS model: synthetic ones (level, contrast, waves, noise), the
    int8 extremes, uniform noise, and real Speech Commands clips through the device's
    front end (built for the host) when ../shared/data is there."""
    from conftest import SPEECH_COMMANDS

    parts = [structured_int8_inputs(77, count_structured, (49, 40, 1)).reshape(count_structured, -1)]
    parts.append(random_inputs(78, 6, 49 * 40))
    if SPEECH_COMMANDS.exists() and count_real:
        from tinydrift.target.host_frontend import NativeFrontend
        from tinydrift.data.wavfolder import centre_in_clip, read_wav

        frontend = NativeFrontend()
        files = sorted(SPEECH_COMMANDS.glob("*/*.wav"))
        files = files[:: max(1, len(files) // count_real)][:count_real]  # spread over the words
        parts.append(np.stack([frontend.process_clip(centre_in_clip(read_wav(f, 16000))).reshape(-1) for f in files]))
    return np.concatenate(parts).astype(np.int8)


@needs_kws
def test_kws_model_with_optimized_kernels_matches_tflite_micro_on_the_host():
    data = KWS_TFLITE.read_bytes()
    host = build_host_models_optimized({"kws_opt": data})["kws_opt"]
    inputs = kws_inputs(200, 100)
    ours = host.run(inputs)
    expected = run_tflm(data, inputs)
    assert np.array_equal(ours, expected), f"{int(np.count_nonzero(ours != expected))} values differ"
    assert len(np.unique(expected.argmax(axis=1))) >= 3  # the inputs reach different classes


# --- random operators: optimized vs reference, host and QEMU -----------------------------

_CHECK_LINE = re.compile(r"^td_kernels_check (\w+) cases=(\d+) mismatches=(\d+) fast=(\d+) planned=(\d+)$",
                         re.MULTILINE)


def parse_check(text: str) -> dict[str, tuple[int, ...]]:
    assert "td_kernels_check done" in text, text[-500:]
    return {m.group(1): tuple(int(v) for v in m.group(2, 3, 4, 5)) for m in _CHECK_LINE.finditer(text)}


def check_random_operators(text: str) -> dict:
    """{kernel: (cases, fast)} after checking that no output differed; `planned` (the M4's
    asm channel loop) is returned apart, under the key "planned"."""
    results = parse_check(text)
    assert set(results) == {"conv", "depthwise", "fully_connected", "avg_pool"}
    for kernel, (cases, mismatches, fast, _) in results.items():
        assert mismatches == 0, f"{kernel}: {mismatches} output values differ from the reference"
        assert cases >= 2000 and fast >= cases // 3, (kernel, cases, fast)  # both requantization paths run
    summary = {kernel: (cases, fast) for kernel, (cases, _, fast, _) in results.items()}
    summary["planned"] = {kernel: planned for kernel, (*_, planned) in results.items()}
    return summary


def run_host_check(firmware_dir: Path = firmware.FIRMWARE_DIR, cases: int | None = None) -> subprocess.CompletedProcess:
    """kernels_check_main.c on the host port under ASan/UBSan, built from firmware_dir (tests
    build mutated copies of firmware/); `cases` per kernel instead of the program's 2,000."""
    port = firmware.PORT_DIR / "host"
    sources = [firmware.test_harness("m4/kernels_check_main.c"), *firmware.stage_sources("kernels"),
               port / "td_port_host.c", port / "td_host_main.c"]
    executable = firmware.compile_host(
        [firmware_dir / s.relative_to(firmware.FIRMWARE_DIR) for s in sources],
        include_dirs=[firmware_dir / firmware.LIB_SRC.relative_to(firmware.FIRMWARE_DIR)], shared=False,
        sanitize=True, optimize="-O1", defines={"TD_CHECK_CASES": cases} if cases else None)
    return subprocess.run([str(executable)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def host_check_results():
    proc = run_host_check()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return check_random_operators(proc.stdout)


def test_random_operators_on_the_host_sanitized(host_check_results):
    assert host_check_results["planned"] == {"conv": 0, "depthwise": 0, "fully_connected": 0,
                                             "avg_pool": 0}  # no DSP here


@needs_arm
@pytest.mark.parametrize("asm", [1, pytest.param(0, marks=pytest.mark.slow)], ids=["asm", "intrinsics-only"])
def test_random_operators_in_qemu(asm, host_check_results):
    """With the asm blocks (the default at -O1 and up), and without (the C of the same loops
    with the DSP instructions, as -O0 builds run)."""
    units = [firmware.Unit(firmware.test_harness("m4/kernels_check_main.c"))]
    units += [firmware.Unit(s) for s in firmware.stage_sources("kernels")]
    elf = firmware.build_arm_image("kernels_check", units, [], {"TD_KERNELS_ASM": asm})
    result = emulator.run(elf, timeout=120)
    text = result.output.decode(errors="replace")
    assert result.exit_code == 0, text[-2000:]
    results = check_random_operators(text)
    # The same draws as on the host, through the DSP instructions (and the asm channel
    # loop on a good share of them).
    planned = results.pop("planned")
    assert results == {k: v for k, v in host_check_results.items() if k != "planned"}
    if asm:
        assert planned["conv"] >= 200 and planned["fully_connected"] >= 100, planned
    else:
        assert planned == {"conv": 0, "depthwise": 0, "fully_connected": 0, "avg_pool": 0}


# --- the KWS model in QEMU ------------------------------------------------------------------


@needs_arm
@needs_kws
def test_kws_model_in_qemu_matches_tflite_micro():
    """The default build for the M4 (TD_KERNELS_OPTIMIZED from __ARM_FEATURE_DSP) runs the
    optimized kernels: every output of >= 100 inputs equals TFLite Micro's."""
    data = KWS_TFLITE.read_bytes()
    inputs = kws_inputs()
    elf, _ = build_model_check(data, inputs)
    names = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    assert "td_conv_widened_s8_m4" in names and "td_depthwise_conv_s8_m4" in names
    result = emulator.run(elf, timeout=120)
    text = result.output.decode(errors="replace")
    assert result.exit_code == 0 and "td_model_check done" in text, text[-1000:]
    lines = re.findall(r"^td_model_check (\d+) ([0-9a-f]+)$", text, re.MULTILINE)
    device = np.stack([np.frombuffer(bytes.fromhex(h), dtype=np.int8) for _, h in lines])
    expected = run_tflm(data, inputs)
    assert len(lines) == len(inputs) >= 100
    assert np.array_equal(device, expected), f"{int(np.count_nonzero(device != expected))} values differ"


POINTWISE = [(case_id, spec) for case_id, spec in SINGLE_OP if spec in _pointwise_cases()]
DEPTHWISE_3X3 = [(case_id, spec) for case_id, spec in SINGLE_OP if spec in _depthwise_3x3_cases()]


def test_pointwise_convolutions_are_generated_for_the_widened_kernel(single_op_models):
    """The optimized build of every pointwise case calls td_conv_widened_s8_m4 with its layout
    (so the host check above covers it), the reference build td_conv_s8 with the int8 filter."""
    models, _ = single_op_models
    assert len(POINTWISE) >= 6
    for case_id, _ in POINTWISE:
        _, source = generate_model_c(models[case_id], "pointwise")
        optimized, reference = source.split("#if TD_KERNELS_OPTIMIZED\n    ")[1].split("#else\n    ")
        assert optimized.startswith("td_conv_widened_s8_m4(") and "_layout_m4," in optimized, case_id
        assert reference.startswith("td_conv_s8(") and "_filter," in reference, case_id


@needs_arm
@pytest.mark.slow
def test_pointwise_and_depthwise_3x3_models_in_qemu_match_tflite_micro(single_op_models):
    """The widened kernel's asm (columns of multiples of 8) and its C loop (the others), and
    the depthwise plane path's asm and C loop, on the M4 equal TFLite Micro on every such
    case (about 60 s: eleven images; the MLPerf and KWS models in QEMU keep both asm loops
    in the default tier)."""
    models, _ = single_op_models
    assert len(DEPTHWISE_3X3) >= 5
    for case_id, spec in POINTWISE + DEPTHWISE_3X3:
        inputs = random_inputs(spec["seed"], 40, int(np.prod(spec["input_shape"])))
        elf, _ = build_model_check(models[case_id], inputs)
        result = emulator.run(elf, timeout=120)
        text = result.output.decode(errors="replace")
        assert result.exit_code == 0 and "td_model_check done" in text, text[-1000:]
        lines = re.findall(r"^td_model_check (\d+) ([0-9a-f]+)$", text, re.MULTILINE)
        device = np.stack([np.frombuffer(bytes.fromhex(h), dtype=np.int8) for _, h in lines])
        expected = run_tflm(models[case_id], inputs)
        assert len(device) == 40 and np.array_equal(device, expected), \
            f"{case_id}: {int(np.count_nonzero(device != expected))} values differ"


# --- requantization shortcuts -----------------------------------------------------------------

REQUANT_WRAPPER = """
#include "kernels/td_requant.h"
#include "kernels/optimized/td_requant_fast.h"
void td_check_requant(int32_t n, const int32_t *acc, const int32_t *multiplier, const int32_t *shift,
                      const int32_t *offset, int32_t *reference, int32_t *fast, int32_t *narrow, int32_t *folded);
void td_check_requant(int32_t n, const int32_t *acc, const int32_t *multiplier, const int32_t *shift,
                      const int32_t *offset, int32_t *reference, int32_t *fast, int32_t *narrow, int32_t *folded)
{
    for (int32_t i = 0; i < n; ++i) {
        reference[i] = td_multiply_by_quantized_multiplier(acc[i], multiplier[i], shift[i]);
        fast[i] = td_requantize_fast(acc[i], multiplier[i], shift[i]);
        const int32_t in_range = shift[i] < 0 && acc[i] > -(1 << 30) && acc[i] < (1 << 30);
        narrow[i] = in_range ? td_requantize_narrow_offset(acc[i], multiplier[i], ~shift[i], 2 * 7 + 1) - 7 : 0;
        /* td_requant_mode's bound on the folded offset; the wrapper's caller checks it holds */
        const int32_t magnitude = offset[i] < 0 ? -offset[i] : offset[i];
        const int32_t foldable = in_range && ((int64_t)(magnitude + 1) << -shift[i]) <= ((int64_t)1 << 30);
        folded[i] = foldable ? td_requantize_narrow_folded(2 * acc[i], multiplier[i],
                                                           td_requant_folded_offset(offset[i], shift[i]), -shift[i]) -
                                   offset[i]
                             : 0;
    }
}
"""


def test_requantization_shortcuts_equal_the_reference(tmp_path):
    wrapper = tmp_path / "requant_check.c"
    wrapper.write_text(REQUANT_WRAPPER)
    library = ctypes.CDLL(str(firmware.compile_host([wrapper], include_dirs=[KERNELS.parent], sanitize=False)))
    rng = np.random.default_rng(3)
    n = 400_000
    shift = rng.integers(-31, 8, n).astype(np.int32)
    multiplier = rng.integers(1 << 30, 1 << 31, n, dtype=np.int64).astype(np.int32)
    multiplier[::97] = 0
    # Any accumulator the reference does not overflow on (x << left shift must fit) ...
    bound = np.int64(1 << 31) >> np.maximum(shift, 0).astype(np.int64)
    acc = (rng.random(n) * 2 * bound - bound).astype(np.int64).clip(-(1 << 31), (1 << 31) - 1).astype(np.int32)
    # ... with exact halves, extremes and small values well represented.
    acc[::5] = rng.integers(-3000, 3000, n // 5 + (n % 5 > 0))
    acc[1::11] = (rng.integers(-(1 << 20), 1 << 20, len(acc[1::11])) << 10) | (1 << 9)
    acc[2::13] = np.where(shift[2::13] > 0, 0, np.int32(-(1 << 31)))
    # output offsets across int8's range, the extremes often (the folded form adds them inside)
    offset = rng.integers(-128, 128, n).astype(np.int32)
    offset[::7] = np.where(rng.random(len(offset[::7])) < 0.5, -128, 127)
    out = [np.zeros(n, np.int32) for _ in range(4)]
    pointer = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    library.td_check_requant(ctypes.c_int32(n), pointer(acc), pointer(multiplier), pointer(shift), pointer(offset),
                             *map(pointer, out))
    reference, fast, narrow, folded = out
    assert np.array_equal(fast, reference)
    in_range = (shift < 0) & (np.abs(acc.astype(np.int64)) < (1 << 30))
    assert in_range.sum() > n // 3
    assert np.array_equal(narrow[in_range], reference[in_range])
    foldable = in_range & (((np.abs(offset.astype(np.int64)) + 1) << -np.minimum(shift, 0)) <= (1 << 30))
    assert foldable.sum() > n // 4 and (foldable & (acc < 0) & (shift < -20)).sum() > 1000
    assert np.array_equal(folded[foldable], reference[foldable])


# --- build and selection ----------------------------------------------------------------------

STRICT_ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-std=c99",
                    "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes", "-Wconversion",
                    "-Wsign-conversion", "-Wpedantic", "-Wcast-align", "-Wdouble-promotion",
                    "-Wmissing-prototypes"]


@pytest.mark.skipif(shutil.which(ARM_GCC) is None, reason="arm-none-eabi-gcc not installed")
@pytest.mark.parametrize("compiler,flags", [
    (ARM_GCC, STRICT_ARM_FLAGS),
    # the C twins on the M4 too (slow tier: 8-10 s; the random operators run them in QEMU)
    pytest.param(ARM_GCC, [*STRICT_ARM_FLAGS, "-DTD_DSP_PLAIN_C"], marks=pytest.mark.slow),
    (ARM_GCC, [*STRICT_ARM_FLAGS, "-O0"]),               # no asm blocks: GCC keeps a frame pointer
    (ARM_GCC, [*STRICT_ARM_FLAGS, "-fno-omit-frame-pointer", "-DTD_KERNELS_ASM=0"]),
    ("gcc", STRICT_ARM_FLAGS[4:]),
], ids=["cortex-m4", "cortex-m4-plain-c", "cortex-m4-O0", "cortex-m4-frame-pointer", "host"])
def test_optimized_kernels_build_warning_free(compiler, flags, tmp_path):
    for source in sorted(OPTIMIZED.glob("*.c")):
        proc = subprocess.run([compiler, *flags, f"-I{KERNELS.parent}", "-c", str(source), "-o",
                               str(tmp_path / f"{source.stem}.o")], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", f"{source.name}:\n{proc.stderr}"


@needs_kws
@pytest.mark.skipif(shutil.which(ARM_GCC) is None, reason="arm-none-eabi-gcc not installed")
@pytest.mark.parametrize("compiler,defines,expected", [
    (ARM_GCC, [], "td_conv_widened_s8_m4"),                  # __ARM_FEATURE_DSP: optimized by default
    (ARM_GCC, ["-DTD_KERNELS_OPTIMIZED=0"], "td_conv_s8"),   # the reference on request
    ("gcc", [], "td_conv_s8"),                               # the host: reference by default
    ("gcc", ["-DTD_KERNELS_OPTIMIZED=1"], "td_conv_widened_s8_m4"),  # as the host tests above build it
])
def test_generated_model_selects_kernels_at_compile_time(compiler, defines, expected, tmp_path):
    header, source = generate_model_c(KWS_TFLITE.read_bytes(), "kws")
    (tmp_path / "td_model_kws.h").write_text(header)
    (tmp_path / "td_model_kws.c").write_text(source)
    obj = tmp_path / "model.o"
    flags = STRICT_ARM_FLAGS if compiler == ARM_GCC else STRICT_ARM_FLAGS[4:]
    subprocess.run([compiler, *flags, *defines, f"-I{KERNELS.parent}", f"-I{tmp_path}", "-c",
                    str(tmp_path / "td_model_kws.c"), "-o", str(obj)], check=True)
    nm = "arm-none-eabi-nm" if compiler == ARM_GCC else "nm"
    undefined = set(subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True,
                                   check=True).stdout.split())
    kernels = {name for name in undefined if name.startswith("td_")}
    assert expected in kernels
    assert ("td_conv_s8" in kernels) != ("td_conv_widened_s8_m4" in kernels)
