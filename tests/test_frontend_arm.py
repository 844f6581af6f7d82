"""The front end builds for the Cortex-M4 warning-free, and its per-frame path needs no heap
and no floating point (checked on a linked image, so only what the API reaches counts)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tinydrift import firmware
from tinydrift.firmware import WARNINGS

ARM_GCC = "arm-none-eabi-gcc"
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-std=c99",
             *WARNINGS, "-ffunction-sections", "-fdata-sections"]

# Everything the device API can reach: a clip, a hop, a reset, the size queries.
ENTRY = """
#include "td_frontend.h"
static td_frontend_t frontend;
static int16_t pcm[TD_FRONTEND_CLIP_SAMPLES];
static int8_t features[TD_FRONTEND_FEATURES];
static uint16_t raw[TD_FRONTEND_FEATURES];
int td_probe_entry(void);
int td_probe_entry(void) {
  int status = td_frontend_process_clip(&frontend, pcm, features);
  status += td_frontend_process_clip_raw(&frontend, pcm, raw);
  td_frontend_reset(&frontend);
  status += td_frontend_process_hop(&frontend, pcm, td_frontend_hop_samples(&frontend), features);
  status += td_frontend_process_hop_raw(&frontend, pcm, td_frontend_hop_samples(&frontend), raw);
  return status + (int)(td_frontend_state_bytes() + td_frontend_scratch_bytes() + td_frontend_table_bytes());
}
"""

HEAP = {"malloc", "calloc", "realloc", "free", "_malloc_r", "_calloc_r", "_realloc_r", "_free_r", "_sbrk"}
LIBM = {"cos", "sin", "floor", "sqrt", "log", "log1p", "pow", "exp", "cosf", "sinf", "floorf", "sqrtf",
        "logf", "log1pf", "powf", "expf"}
# Floating-point arithmetic and conversions on the FPU (moves and spills do not count).
VFP_ARITHMETIC = re.compile(r"\tv(add|sub|mul|nmul|div|sqrt|fma|fms|fnma|fnms|mla|mls|abs|neg|cvt|cmp|cmpe)\.")

pytestmark = pytest.mark.skipif(shutil.which(ARM_GCC) is None, reason=f"{ARM_GCC} not installed")


@pytest.fixture(scope="module")
def arm_build(tmp_path_factory):
    """Objects for every source, and an image linked from td_probe_entry with --gc-sections."""
    out = tmp_path_factory.mktemp("arm")
    sources, include_dirs, defines = firmware.frontend_build_inputs()
    entry = out / "td_probe_entry.c"
    entry.write_text(ENTRY)
    flags = [*ARM_FLAGS, *[f"-I{d}" for d in include_dirs], *[f"-D{k}={v}" for k, v in defines.items()]]
    objects = {}
    for source in [*sources, entry]:
        obj = out / f"{source.stem}.o"
        proc = subprocess.run([ARM_GCC, *flags, "-c", str(source), "-o", str(obj)], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", f"{source}:\n{proc.stderr}"
        objects[source.stem] = obj
    elf = out / "frontend_probe.elf"
    proc = subprocess.run(
        [ARM_GCC, *ARM_FLAGS, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
         "-Wl,--gc-sections", "-Wl,-e,td_probe_entry", *map(str, objects.values()), "-o", str(elf)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return objects, elf


def symbols(path) -> set[str]:
    out = subprocess.run(["arm-none-eabi-nm", str(path)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_every_file_builds_warning_free_for_cortex_m4(arm_build):
    objects, _ = arm_build
    assert {"td_frontend", "td_frontend_fft", "td_frontend_int8", "frontend", "kiss_fftr"} <= set(objects)


def test_linked_front_end_has_no_heap_no_float(arm_build):
    _, elf = arm_build
    names = symbols(elf)
    assert {"td_frontend_process_clip", "FrontendProcessSamples", "kiss_fftr", "kiss_fft"} <= names
    assert not names & HEAP, sorted(names & HEAP)
    assert not names & LIBM, sorted(names & LIBM)
    soft_float = sorted(n for n in names if n.startswith(("__aeabi_f", "__aeabi_d", "__aeabi_i2f", "__aeabi_i2d")))
    assert not soft_float, soft_float
    # Nor the init code the tables replace.
    assert not names & {"kiss_fftr_alloc", "kiss_fft_alloc", "FrontendPopulateState"}
    disassembly = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True,
                                 check=True).stdout
    assert not VFP_ARITHMETIC.findall(disassembly)


def test_our_objects_reference_no_heap_or_float(arm_build):
    """Unlinked, too: our files call nothing from the heap or libm at all."""
    objects, _ = arm_build
    for name in ("td_frontend", "td_frontend_fft", "td_frontend_int8"):
        undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(objects[name])], capture_output=True,
                                   text=True, check=True).stdout.split()
        bad = [s for s in undefined if s in HEAP | LIBM or s.startswith(("__aeabi_f", "__aeabi_d"))]
        assert not bad, (name, bad)


def test_tables_are_in_flash_and_state_in_ram(arm_build):
    """Const tables land in .rodata (flash); only the FFT scratch is a static buffer."""
    objects, _ = arm_build
    sections = subprocess.run(["arm-none-eabi-objdump", "-h", str(objects["td_frontend_fft"])],
                              capture_output=True, text=True, check=True).stdout
    sizes = {m.group(1): int(m.group(2), 16)
             for m in re.finditer(r"^\s*\d+\s+(\S+)\s+([0-9a-f]+)", sections, re.MULTILINE)}
    rodata = sum(v for k, v in sizes.items() if k.startswith(".rodata"))
    bss = sum(v for k, v in sizes.items() if k.startswith(".bss"))
    data = sum(v for k, v in sizes.items() if k.startswith(".data"))
    assert rodata >= 268 + 256 * 4 + 128 * 4  # kiss_fft_state with its twiddles, super twiddles
    assert bss == 256 * 4 and data == 0
