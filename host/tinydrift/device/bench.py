"""`tinydrift bench device`: what each stage of the pipeline costs on the emulated Cortex-M4.

The bench firmware (firmware/bench/src/bench_main.c) runs, on fixed inputs, the front end
on a 1 s clip, the model with the optimized kernels, the same model with the reference
kernels, and the drift monitor (td_summarize_frames + td_monitor_update), on QEMU's
mps2-an386 with `-icount shift=0`, where td_port_cycles() counts instructions (one cycle
per 40). Before reporting, the host checks the run: the device's features against the host
build of the same front end, and both models' outputs against TFLite Micro's.

    figures = run_bench("models/kws")      # dict, see BENCH_KEYS
    print(format_report(figures))

Build path: the firmware is compiled here, with arm-none-eabi-gcc and the flags of the
local PlatformIO platform (firmware/platforms/tinydrift-qemu/builder/main.py), not by
`pio run`: the image needs host-generated sources (the model's C twice, once per kernel
set, selected per file with TD_KERNELS_OPTIMIZED; the fixed clip; the front end's
third-party C that tinydrift.features.third_party extracts at build time), which a
PlatformIO project could only reach through pre-build scripts. `build_arm_image` is the
same path for any test firmware (the kernel checks use it too).
The flash/RAM figures are the application's own image (`build_app`: firmware/src through pio).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import atomic, native
from ..errors import TinydriftError

BENCH_DIR = native.REPO_ROOT / "firmware" / "bench"
BENCH_SRC = BENCH_DIR / "src"
PORT_DIR = native.REPO_ROOT / "firmware" / "port" / "mps2_an386"
CORE_SRC = native.FIRMWARE_LIB / "src"
KERNEL_DIR = CORE_SRC / "kernels"
MONITOR_DIR = CORE_SRC / "monitor"
IMAGE_DIR = native.REPO_ROOT / "build" / "arm"
DEFAULT_MODEL_DIR = native.REPO_ROOT / "models" / "kws"

ARM_GCC = "arm-none-eabi-gcc"
ARM_SIZE = "arm-none-eabi-size"
# The local platform's flags (firmware/platforms/tinydrift-qemu/builder/main.py).
CPU_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
C_FLAGS = ["-std=c99", "-Wstrict-prototypes", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-Wshadow",
           "-ffunction-sections", "-fdata-sections", "-DTD_BOARD_MPS2_AN386"]
LINK_FLAGS = ["-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections"]

CLIP_SAMPLES = 16000
MONITOR_REPEAT = 64
BENCH_KEYS = (
    "frontend_instructions", "model_instructions", "reference_model_instructions", "macs",
    "instructions_per_mac", "reference_instructions_per_mac", "optimized_speedup",
    "monitor_instructions", "summarize_instructions", "monitor_update_instructions", "monitor_share",
    "flash_bytes", "ram_bytes", "stack_used_bytes", "size_source", "arena_bytes", "tflm_arena_bytes",
    "monitor_state_bytes", "capture_frames_per_s", "checks",
)  # fmt: skip


@dataclass(frozen=True)
class Unit:
    """One C source of an image and the defines only it gets (e.g. its kernel selection)."""

    source: Path
    defines: dict = field(default_factory=dict)


def kernel_sources() -> list[Path]:
    """Reference and optimized kernels: both go into every image, --gc-sections keeps what
    the models call."""
    return sorted(KERNEL_DIR.glob("*.c")) + sorted((KERNEL_DIR / "optimized").glob("*.c"))


def port_sources() -> list[Path]:
    return sorted(PORT_DIR.glob("*.c"))


def _define_flags(defines: dict) -> list[str]:
    return [f"-D{key}={value}" for key, value in sorted(defines.items())]


def build_arm_image(name: str, units: list[Unit], include_dirs: list[Path], defines: dict | None = None) -> Path:
    """Compile and link a firmware image for mps2-an386 with the platform's flags; returns
    the ELF. Cached under build/arm/ by the hash of every input (sources, headers in the
    include directories, flags), so an unchanged image is not built again."""
    gcc = shutil.which(ARM_GCC)
    if gcc is None:
        raise TinydriftError(f"{ARM_GCC} not found: run scripts/setup.sh (it installs the cross compiler)")
    include_dirs = [Path(d) for d in include_dirs] + [CORE_SRC, PORT_DIR]
    common = [*CPU_FLAGS, *C_FLAGS, *_define_flags(defines or {}), *[f"-I{d}" for d in include_dirs]]
    digest = hashlib.sha256(json.dumps(common).encode())
    for unit in units:
        digest.update(str(unit.source).encode() + json.dumps(unit.defines, sort_keys=True).encode())
        digest.update(Path(unit.source).read_bytes())
    for folder in include_dirs:
        for header in sorted(folder.rglob("*.h")):
            digest.update(str(header).encode() + header.read_bytes())
    digest.update((PORT_DIR / "mps2_an386.ld").read_bytes())
    folder = IMAGE_DIR / f"{name}-{digest.hexdigest()[:16]}"
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
        command = [gcc, *CPU_FLAGS, *LINK_FLAGS, f"-Wl,-Map,{folder / (name + '.map')}",
                   f"-T{PORT_DIR / 'mps2_an386.ld'}", *map(str, objects), "-o", str(tmp)]
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


# --- the bench firmware --------------------------------------------------------------------


def bench_pcm(seed: int = 2024) -> np.ndarray:
    """The fixed 1 s clip: a voiced sound with a gliding pitch and two moving formant-like
    bands between 0.2 s and 0.75 s, in low noise (deterministic: the same every run)."""
    rng = np.random.default_rng(seed)
    t = np.arange(CLIP_SAMPLES) / CLIP_SAMPLES
    pitch = 120.0 + 60.0 * t
    phase = 2 * np.pi * np.cumsum(pitch) / CLIP_SAMPLES
    voiced = sum(np.sin(k * phase) * np.exp(-((k * pitch - (500 + 900 * t)) / 300.0) ** 2) for k in range(1, 30))
    voiced += 0.5 * sum(np.sin(k * phase) * np.exp(-((k * pitch - 2200.0) / 400.0) ** 2) for k in range(1, 30))
    envelope = np.clip((t - 0.2) / 0.05, 0, 1) * np.clip((0.75 - t) / 0.05, 0, 1)
    signal = 6000.0 * envelope * voiced / np.max(np.abs(voiced)) + rng.normal(0.0, 60.0, CLIP_SAMPLES)
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


def _pcm_header(pcm: np.ndarray) -> str:
    lines = [", ".join(str(int(v)) for v in pcm[i:i + 16]) + "," for i in range(0, len(pcm), 16)]
    body = "\n    ".join(lines)
    return ("/* Generated by tinydrift.device.bench: the fixed 1 s clip of the benchmark. */\n"
            "#ifndef TD_BENCH_PCM_H\n#define TD_BENCH_PCM_H\n\n#include <stdint.h>\n\n"
            f"static const int16_t td_bench_pcm[{len(pcm)}] = {{\n    {body}\n}};\n\n#endif\n")


def _monitor_config_header(model_dir: Path) -> Path:
    headers = sorted((model_dir / "include").glob("td_monitor_config_*.h"))
    if len(headers) != 1:
        raise TinydriftError(f"{model_dir}/include: expected one td_monitor_config_<name>.h, found "
                             f"{[h.name for h in headers]}; run `tinydrift export` for this model")
    return headers[0]


def frontend_units_and_includes() -> tuple[list[Unit], list[Path]]:
    from ..codegen.frontend_native import frontend_build_inputs

    sources, include_dirs, defines = frontend_build_inputs()
    return [Unit(Path(s), dict(defines)) for s in sources], [Path(d) for d in include_dirs]


def build_bench(model_dir: Path = DEFAULT_MODEL_DIR, *, reference: bool = True) -> tuple[Path, dict]:
    """The bench image for the model in `model_dir` (model_int8.tflite and its exported
    monitor config). reference=False leaves the reference model out: the pipeline image
    whose size is reported. Returns (elf, facts about the model)."""
    from ..codegen.model_c import generate_model_c, plan_model

    model_dir = Path(model_dir)
    tflite_path = model_dir / "model_int8.tflite"
    if not tflite_path.is_file():
        raise TinydriftError(f"{tflite_path} not found: train and quantize a model first (tinydrift train)")
    tflite = tflite_path.read_bytes()
    config_header = _monitor_config_header(model_dir)
    config_name = config_header.stem[len("td_monitor_config_"):]
    plan = plan_model(tflite, "opt")

    digest = hashlib.sha256(tflite).hexdigest()[:16]
    generated = IMAGE_DIR / "generated" / f"bench-{digest}"
    pcm = bench_pcm()
    files = {"td_bench_pcm.h": _pcm_header(pcm)}
    for name in ("opt", "ref"):
        header, source = generate_model_c(tflite, name)
        files[f"td_model_{name}.h"], files[f"td_model_{name}.c"] = header, source
    for filename, text in files.items():
        path = generated / filename
        if not path.is_file() or path.read_text() != text:
            atomic.write_text(path, text)
    arena = re.search(r"#define TD_OPT_ARENA_BYTES (\d+)", files["td_model_opt.h"])

    frontend_units, frontend_includes = frontend_units_and_includes()
    units = [
        Unit(BENCH_SRC / "bench_main.c", {"TD_BENCH_REFERENCE": int(reference)}),
        Unit(generated / "td_model_opt.c", {"TD_KERNELS_OPTIMIZED": 1}),
        *([Unit(generated / "td_model_ref.c", {"TD_KERNELS_OPTIMIZED": 0})] if reference else []),
        *[Unit(s) for s in kernel_sources()],
        *frontend_units,
        *[Unit(s) for s in sorted(MONITOR_DIR.glob("*.c"))],
        *[Unit(s) for s in port_sources()],
    ]
    defines = {
        "TD_BENCH_MONITOR_CONFIG_HEADER": f'"{config_header.name}"',
        "TD_BENCH_MONITOR_CONFIG_VAR": f"td_monitor_config_{config_name}",
        "TD_BENCH_MONITOR_REPEAT": MONITOR_REPEAT,
    }
    elf = build_arm_image("bench" if reference else "bench_pipeline", units,
                          [generated, MONITOR_DIR, config_header.parent, *frontend_includes], defines)
    facts = {"tflite": tflite, "pcm": pcm, "macs": plan.macs, "arena_bytes": int(arena.group(1)),
             "output_size": plan.output.num_elements}
    return elf, facts


def build_app(model_dir: Path = DEFAULT_MODEL_DIR) -> Path:
    """The application image (firmware/src, `pio run -e mps2_an386`) with the model in
    `model_dir` generated afresh from its model_int8.tflite (so it calls the kernels the
    current generator selects) beside its exported headers. Built in build/arm/app-pio, apart
    from firmware/.pio, so it never disturbs a build in progress there."""
    from ..codegen.model_c import generate_model_c
    from . import platformio

    model_dir = Path(model_dir)
    include = model_dir / "include"
    headers = sorted(include.glob("td_model_*.h"))
    if len(headers) != 1:
        raise TinydriftError(f"{include}: expected one td_model_<name>.h; run `tinydrift export` for this model")
    name = headers[0].stem[len("td_model_"):]
    tflite = (model_dir / "model_int8.tflite").read_bytes()
    folder = IMAGE_DIR / "generated" / f"app-{hashlib.sha256(tflite).hexdigest()[:16]}" / "include"
    header, source = generate_model_c(tflite, name)
    files = {h.name: h.read_text() for h in include.glob("*.h")}
    files.update({f"td_model_{name}.h": header, f"td_model_{name}.c": source})
    for filename, text in files.items():
        if not (folder / filename).is_file() or (folder / filename).read_text() != text:
            atomic.write_text(folder / filename, text)
    pio = platformio.pio_executable()
    if pio is None:
        raise TinydriftError("PlatformIO (`pio`) not found: run scripts/setup.sh")
    platformio.prepare()
    workspace = IMAGE_DIR / "app-pio"
    environment = dict(platformio.pio_environment(), PLATFORMIO_WORKSPACE_DIR=str(workspace),
                       TINYDRIFT_MODEL_DIR=str(folder))
    proc = subprocess.run([str(pio), "run", "--silent", "-e", platformio.EMULATED_ENV], cwd=platformio.FIRMWARE_DIR,
                          env=environment, capture_output=True, text=True)
    elf = workspace / "build" / platformio.EMULATED_ENV / "firmware.elf"
    if proc.returncode != 0 or not elf.is_file():
        raise TinydriftError(f"building the app failed: {(proc.stdout + proc.stderr)[-1500:]}")
    return elf


_BENCH_LINE = re.compile(r"^td_bench (.*)$", re.MULTILINE)


def parse_bench_line(text: str) -> dict:
    match = _BENCH_LINE.search(text)
    if match is None:
        raise TinydriftError(f"the bench firmware printed no result line: {text[-500:]!r}")
    return dict(item.split("=", 1) for item in match.group(1).split())


def _fnv1a(data: bytes) -> int:
    value = 2166136261
    for byte in data:
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return value


def run_bench(model_dir: Path = DEFAULT_MODEL_DIR, *, app_elf: Path | None = None, parse_frames: int = 200_000,
              timeout: float = 120.0) -> dict:
    """Build and run the bench firmware in QEMU (-icount shift=0); check its run; return the
    figures (keys: BENCH_KEYS). Sizes come from `app_elf` when given, else from the app built
    here (build_app), else, when pio cannot build it, from the bench's pipeline image (front
    end + optimized model + monitor + port + the clip, no reference model); `size_source`
    says which."""
    from ..codegen.frontend_native import NativeFrontend
    from ..model.runtimes import run_tflm, tflm_arena_bytes
    from . import emulator, protocol

    elf, facts = build_bench(model_dir, reference=True)
    result = emulator.run(elf, icount_shift=0, timeout=timeout)
    text = result.output.decode(errors="replace")
    if result.exit_code != 0:
        raise TinydriftError(f"the bench firmware exited with {result.exit_code} in QEMU: {text[-500:]}")
    fields = parse_bench_line(text)

    def instructions(key: str) -> int:
        return emulator.instructions_from_cycles(int(fields[key]))

    def per_call(key: str) -> float:  # milli-cycles per call -> instructions per call
        return int(fields[key]) * emulator.NANOSECONDS_PER_CYCLE / 1000

    features = NativeFrontend().process_clip(facts["pcm"])
    expected = run_tflm(facts["tflite"], features.reshape(1, -1))[0]
    output = np.frombuffer(bytes.fromhex(fields["output"]), dtype=np.int8)
    reference_output = np.frombuffer(bytes.fromhex(fields["reference_output"]), dtype=np.int8)
    checks = {
        "features_equal_host": int(fields["features_fnv1a"]) == _fnv1a(features.astype(np.int8).tobytes()),
        "output_equals_tflm": bool(np.array_equal(output, expected)),
        "reference_output_equals_tflm": bool(np.array_equal(reference_output, expected)),
    }

    frontend = instructions("frontend_cycles")
    model = instructions("model_cycles")
    reference = instructions("reference_model_cycles")
    summarize = per_call("summarize_millicycles")
    update = per_call("update_millicycles")
    monitor = summarize + update
    if app_elf is not None:
        sizes, source = elf_sizes(Path(app_elf)), f"app image {app_elf}"
    else:
        try:
            sizes, source = elf_sizes(build_app(model_dir)), "app image (firmware/src built by pio, model regenerated)"
        except TinydriftError as exc:  # the app is not buildable here: say so, measure the bench's pipeline
            pipeline_elf, _ = build_bench(model_dir, reference=False)
            sizes = elf_sizes(pipeline_elf)
            source = (f"bench pipeline image (front end, optimized model, monitor, port, and the 32 KB fixed clip), "
                      f"not the app: {str(exc).splitlines()[0]}")
    macs = facts["macs"]
    return {
        "frontend_instructions": frontend,
        "model_instructions": model,
        "reference_model_instructions": reference,
        "macs": macs,
        "instructions_per_mac": model / macs,
        "reference_instructions_per_mac": reference / macs,
        "optimized_speedup": reference / model,
        "monitor_instructions": round(monitor),
        "summarize_instructions": round(summarize),
        "monitor_update_instructions": round(update),
        "monitor_share": monitor / (frontend + model + monitor),
        "flash_bytes": sizes["flash_bytes"],
        "ram_bytes": sizes["ram_bytes"],
        "stack_used_bytes": int(fields["stack_used_bytes"]),
        "size_source": source,
        "arena_bytes": facts["arena_bytes"],
        "tflm_arena_bytes": tflm_arena_bytes(facts["tflite"]),
        "monitor_state_bytes": int(fields["monitor_state_bytes"]),
        "capture_frames_per_s": protocol.bench_parse(parse_frames),
        "checks": checks,
    }


def format_report(figures: dict) -> str:
    """The figures as a short table for people."""
    checks = figures["checks"]
    lines = [
        "tinydrift bench device (QEMU mps2-an386, Cortex-M4F, -icount shift=0: instructions)",
        f"  front end, 1 s clip (49 frames)   {figures['frontend_instructions']:>12,}",
        f"  model, optimized kernels          {figures['model_instructions']:>12,}"
        f"   {figures['instructions_per_mac']:.2f} per MAC ({figures['macs']:,} MACs)",
        f"  model, reference kernels          {figures['reference_model_instructions']:>12,}"
        f"   {figures['reference_instructions_per_mac']:.2f} per MAC (x{figures['optimized_speedup']:.2f})",
        f"  monitor (summarize + update)      {figures['monitor_instructions']:>12,}"
        f"   {100 * figures['monitor_share']:.2f} % of front end + model + monitor",
        f"    summarize {figures['summarize_instructions']:,}, update {figures['monitor_update_instructions']:,}",
        f"  flash {figures['flash_bytes']:,} B, static RAM {figures['ram_bytes']:,} B ({figures['size_source']})",
        f"  stack reached in the bench run {figures['stack_used_bytes']:,} B",
        f"  arena {figures['arena_bytes']:,} B (TFLite Micro: {figures['tflm_arena_bytes']:,} B), monitor state "
        f"{figures['monitor_state_bytes']:,} B",
        f"  host capture parser               {figures['capture_frames_per_s']:>12,.0f} frames/s",
        "  checks: " + ", ".join(f"{key} {'ok' if value else 'FAILED'}" for key, value in checks.items()),
    ]
    return "\n".join(lines)
