"""The firmware tree, owned in one place.

Where the portable C library, its stages, the ports, the C test harnesses and the board
descriptions are, and the two build recipes every host-side build uses:

- `compile_host`: the firmware's C compiled for this machine (shared libraries for ctypes,
  test programs), so pytest and `tinydrift verify` run the very code the device runs;
- `build_arm_image`: an image for the emulated Cortex-M4 board (benchmarks, checks), with
  the CPU flags read from the board description PlatformIO uses too.

In a clone the tree is the repository's firmware/ folder and builds go to build/; in an
installed wheel the same files ship inside the package (tinydrift/_firmware) and builds go
to the user's cache, so `tinydrift export` and the checks work outside any clone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tinydrift import atomic
from tinydrift.errors import TinydriftError

PACKAGE_DIR = Path(__file__).resolve().parent

# The TFLite ops the generated model C runs (one kernel a file in lib/tinydrift/src/kernels/,
# each bit-exact with TFLite Micro; RESHAPE, SQUEEZE and EXPAND_DIMS only rename a buffer),
# beside the streaming state's, which the code generator adds for wake-word models.
MODEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX", "ADD",
             "LOGISTIC", "QUANTIZE", "CONCATENATION", "SPLIT_V", "STRIDED_SLICE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS")
REPO_ROOT = PACKAGE_DIR.parents[1]
IN_CLONE = (REPO_ROOT / "firmware" / "platformio.ini").is_file()

FIRMWARE_DIR = REPO_ROOT / "firmware" if IN_CLONE else PACKAGE_DIR / "_firmware"
if IN_CLONE:
    BUILD_ROOT = REPO_ROOT / "build"
else:
    BUILD_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinydrift"
# PlatformIO's workspace (its builds): the project's own .pio in a clone, where a hand-run
# `pio run` puts them too; an installed tool writes nothing into its own package.
PIO_WORKSPACE = FIRMWARE_DIR / ".pio" if IN_CLONE else BUILD_ROOT / "firmware"

LIB_DIR = FIRMWARE_DIR / "lib" / "tinydrift"
LIB_SRC = LIB_DIR / "src"  # one folder a stage; td_port.h, the porting header, at its root
TEST_DIR = FIRMWARE_DIR / "test"  # C harnesses: monitor/ (host library, fuzz, M4 bench), m4/ (bench, checks)
PORT_DIR = FIRMWARE_DIR / "port"
SCRIPTS_DIR = FIRMWARE_DIR / "scripts"
BOARDS_DIR = FIRMWARE_DIR / "platforms" / "tinydrift-qemu" / "boards"
EMULATED_BOARD = "mps2_an386"

HOST_BUILD_DIR = BUILD_ROOT / "host"
ARM_BUILD_DIR = BUILD_ROOT / "arm"
THIRD_PARTY_DIR = BUILD_ROOT / "third_party"

STAGES = ("frontend", "kernels", "monitor", "protocol", "app")

WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes"]
SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


# ---------------------------------------------------------------------------- layout

def stage_dir(stage: str) -> Path:
    if stage not in STAGES:
        raise ValueError(f"unknown firmware stage {stage!r}; stages: {', '.join(STAGES)}")
    return LIB_SRC / stage


def stage_sources(stage: str) -> list[Path]:
    """The C files of one stage. Kernels: the reference and the optimized set both (a
    generated model picks one per file with TD_KERNELS_OPTIMIZED; --gc-sections drops the rest)."""
    folder = stage_dir(stage)
    sources = sorted(folder.glob("*.c"))
    if stage == "kernels":
        sources += sorted((folder / "optimized").glob("*.c"))
    return sources


def include_dirs(*stages: str) -> list[Path]:
    """The library root (td_port.h, `#include "kernels/..."`) and the given stages' folders."""
    return [LIB_SRC, *(stage_dir(s) for s in stages)]


def port_sources(board: str) -> list[Path]:
    return sorted((PORT_DIR / board).glob("*.c"))


def test_harness(path: str) -> Path:
    """A C harness under firmware/test/, e.g. test_harness("monitor/td_monitor_host.c")."""
    found = TEST_DIR / path
    if not found.is_file():
        raise TinydriftError(f"{found}: C harness missing from the firmware tree; reinstall tinydrift")
    return found


# ---------------------------------------------------------------------------- third-party C

def third_party_module():
    """firmware/scripts/td_third_party.py, loaded by path: the PlatformIO build loads the
    same file, so both fetch and check the front end's sources one way."""
    name = "td_third_party"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS_DIR / "td_third_party.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def microfrontend_sources():
    """Fetch (once, with pip, hash-checked) and extract the micro_speech front end's
    third-party C into build/third_party; returns its sources, include dirs and defines."""
    module = third_party_module()
    try:
        return module.microfrontend_sources(THIRD_PARTY_DIR)
    except module.ThirdPartyError as exc:
        raise TinydriftError(str(exc)) from exc


def frontend_build_inputs(step_ms: int | None = None) -> tuple[list[Path], list[Path], dict]:
    """Sources, include folders and defines of the whole front end: the stage's own C plus
    the third-party microfrontend and kissfft files. `step_ms` builds it for another frame
    step than td_frontend.h's default (20 ms; microWakeWord's models take 10)."""
    third_party = microfrontend_sources()
    sources = [*stage_sources("frontend"), *third_party.sources]
    defines = dict(third_party.defines)
    if step_ms is not None:
        defines["TD_FRONTEND_STEP_MS"] = int(step_ms)
    return sources, [stage_dir("frontend"), *third_party.include_dirs], defines


# ---------------------------------------------------------------------------- this host

def compile_host(
    sources: list[Path],
    output: Path | None = None,
    *,
    include_dirs: list[Path] = (),
    defines: dict[str, str | int] | None = None,
    shared: bool = True,
    sanitize: bool = False,
    optimize: str = "-O2",
    extra_flags: list[str] = (),
    compiler: str = "gcc",
) -> Path:
    """Compile C sources into a shared library (for ctypes) or an executable.

    The output name defaults to a hash of the inputs under build/host/, so an unchanged
    build is reused and parallel test runs with different settings do not collide.
    """
    if shutil.which(compiler) is None:
        raise TinydriftError(f"{compiler} not found: run scripts/setup.sh (it installs the compilers)")
    sources = [Path(s) for s in sources]
    flags = ["-std=c99", optimize, *WARNINGS, *extra_flags]
    flags += [f"-I{d}" for d in include_dirs]
    flags += [f"-D{k}={v}" for k, v in (defines or {}).items()]
    if sanitize:
        flags += SANITIZERS
    if shared:
        flags += ["-shared", "-fPIC"]
    if output is None:
        digest = hashlib.sha256()
        for part in [compiler, *flags, *map(str, sources)]:
            digest.update(part.encode())
        for src in sources:
            digest.update(src.read_bytes())
        for d in include_dirs:
            for h in sorted(Path(d).rglob("*.h")):
                digest.update(h.read_bytes())
        suffix = ".so" if shared else ""
        output = HOST_BUILD_DIR / f"{sources[0].stem}-{digest.hexdigest()[:16]}{suffix}"
        if output.exists():
            return output
    # Written beside the output and renamed into place: a run beside this one that reuses
    # the same build never loads a half-linked library.
    with atomic.atomic_path(output) as partial:
        cmd = [compiler, *flags, *map(str, sources), "-o", str(partial), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise TinydriftError(f"C build failed: {' '.join(cmd)}\n{proc.stderr}")
    return output


# ---------------------------------------------------------------------------- the emulated board

ARM_GCC = "arm-none-eabi-gcc"
ARM_SIZE = "arm-none-eabi-size"
# As the local PlatformIO platform compiles (platforms/tinydrift-qemu/builder/main.py).
ARM_C_FLAGS = ["-std=c99", "-Wstrict-prototypes", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-Wshadow",
               "-ffunction-sections", "-fdata-sections"]
ARM_LINK_FLAGS = ["-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections"]


def board(name: str = EMULATED_BOARD) -> dict:
    """The board description PlatformIO reads (platforms/tinydrift-qemu/boards/NAME.json)."""
    path = BOARDS_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TinydriftError(f"{path}: cannot read the board description ({exc})") from exc


def cpu_flags(name: str = EMULATED_BOARD) -> list[str]:
    """-mcpu from the board's build.cpu; an 'f' MCU (cortex-m4f) gets the hard-float ABI."""
    build = board(name)["build"]
    flags = [f"-mcpu={build['cpu']}", "-mthumb"]
    if build.get("mcu", "").endswith("f"):
        flags += ["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    return flags


def board_defines(name: str = EMULATED_BOARD) -> dict:
    return {f"TD_BOARD_{board(name)['build']['tinydrift_port'].upper()}": 1}


def linker_script(name: str = EMULATED_BOARD) -> Path:
    return FIRMWARE_DIR / board(name)["build"]["ldscript"]


@dataclass(frozen=True)
class Unit:
    """One C source of an image and the defines only it gets (e.g. its kernel selection)."""

    source: Path
    defines: dict = field(default_factory=dict)


def _define_flags(defines: dict) -> list[str]:
    return [f"-D{key}={value}" for key, value in sorted(defines.items())]


def build_arm_image(name: str, units: list[Unit], include_dirs: list[Path], defines: dict | None = None,
                    board_name: str = EMULATED_BOARD) -> Path:
    """Compile and link an image for the board with its port's start-up and linker script;
    returns the ELF. Cached under build/arm/ by the hash of every input (sources, headers
    in the include folders, flags), so an unchanged image is not built again."""
    gcc = shutil.which(ARM_GCC)
    if gcc is None:
        raise TinydriftError(f"{ARM_GCC} not found: run scripts/setup.sh (it installs the cross compiler)")
    port = PORT_DIR / board(board_name)["build"]["tinydrift_port"]
    units = [*units, *(Unit(s) for s in port_sources(port.name))]
    include_dirs = [Path(d) for d in include_dirs] + [LIB_SRC, port]
    cpu = cpu_flags(board_name)
    common = [*cpu, *ARM_C_FLAGS, *_define_flags({**board_defines(board_name), **(defines or {})}),
              *[f"-I{d}" for d in include_dirs]]
    script = linker_script(board_name)
    digest = hashlib.sha256(json.dumps(common).encode())
    for unit in units:
        digest.update(str(unit.source).encode() + json.dumps(unit.defines, sort_keys=True).encode())
        digest.update(Path(unit.source).read_bytes())
    for folder in include_dirs:
        for header in sorted(folder.rglob("*.h")):
            digest.update(str(header).encode() + header.read_bytes())
    digest.update(script.read_bytes())
    folder = ARM_BUILD_DIR / f"{name}-{digest.hexdigest()[:16]}"
    elf = folder / f"{name}.elf"
    if elf.is_file():
        return elf
    folder.mkdir(parents=True, exist_ok=True)

    def compile_unit(index_unit: tuple[int, Unit]) -> Path:
        index, unit = index_unit
        obj = folder / f"{index:03d}_{Path(unit.source).stem}.o"
        command = [gcc, *common, *_define_flags(unit.defines), "-c", str(unit.source), "-o", str(obj)]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise TinydriftError(f"{name}: compiling {unit.source} failed:\n{' '.join(command)}\n{proc.stderr}")
        return obj

    with ThreadPoolExecutor(max_workers=2) as pool:
        objects = list(pool.map(compile_unit, enumerate(units)))
    with atomic.atomic_path(elf) as tmp:
        command = [gcc, *cpu, *ARM_LINK_FLAGS, f"-Wl,-Map,{folder / (name + '.map')}",
                   f"-T{script}", *map(str, objects), "-o", str(tmp)]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise TinydriftError(f"{name}: linking failed:\n{' '.join(command)}\n{proc.stderr}")
    return elf


def elf_sizes(elf: Path) -> dict:
    """Section sizes of an image (arm-none-eabi-size -A): flash = code, constants and the
    initial values of .data; ram = .data + .bss (static RAM, the stack reservation apart)."""
    size = shutil.which(ARM_SIZE)
    if size is None:
        raise TinydriftError(f"{ARM_SIZE} not found: run scripts/setup.sh (it installs the cross binutils)")
    out = subprocess.run([size, "-A", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    sections = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", out, re.MULTILINE)}
    text = sections.get(".text", 0) + sections.get(".ARM.exidx", 0)
    data, bss = sections.get(".data", 0), sections.get(".bss", 0)
    return {"flash_bytes": text + data, "ram_bytes": data + bss, "stack_reserved_bytes": sections.get(".td_stack", 0),
            "text": text, "data": data, "bss": bss}
