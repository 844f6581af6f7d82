"""SCons build for tinydrift's QEMU boards: the same flags as the project's direct
compiler checks (C99, -Wall -Wextra -Werror, Cortex-M4 hard float), newlib-nano without
start files (the port brings its own start-up and linker script), and an `upload` target
that boots the image in QEMU with the console on this terminal."""

import os
import shlex
import shutil
import subprocess
import sys

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()

CPU_FLAGS = [
    "-mcpu=%s" % board.get("build.cpu"),
    "-mthumb",
    "-mfloat-abi=hard",
    "-mfpu=fpv4-sp-d16",
]

env.Replace(
    AR="arm-none-eabi-gcc-ar",
    AS="arm-none-eabi-as",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    GDB="arm-none-eabi-gdb",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-gcc-ranlib",
    SIZETOOL="arm-none-eabi-size",
    ARFLAGS=["rc"],
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
    # `pio run -t size` and the memory summary read these sections.
    SIZEPROGREGEXP=r"^(?:\.text|\.data|\.rodata|\.ARM\.exidx)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.bss|\.td_stack)\s+(\d+).*",
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
)

env.Append(
    ASFLAGS=CPU_FLAGS + ["-x", "assembler-with-cpp"],
    CFLAGS=["-std=c99", "-Wstrict-prototypes"],
    CCFLAGS=CPU_FLAGS
    + [
        "-O2",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wshadow",
        "-ffunction-sections",
        "-fdata-sections",
    ],
    CPPDEFINES=[("F_CPU", "$BOARD_F_CPU"), "TD_BOARD_" + env.subst("$BOARD").upper()],
    LINKFLAGS=CPU_FLAGS
    + [
        "-nostartfiles",
        "--specs=nano.specs",
        "-Wl,--gc-sections",
        "-Wl,-Map,${BUILD_DIR}/firmware.map",
    ],
)

# The linker script path in the board manifest is relative to the project.
env.Replace(LDSCRIPT_PATH=os.path.join("$PROJECT_DIR", board.get("build.ldscript")))

target_elf = env.BuildProgram()
target_size = env.Alias("size", target_elf, env.VerboseAction("$SIZEPRINTCMD", "Calculating size $SOURCE"))
AlwaysBuild(target_size)


def boot_in_qemu(target, source, env):  # noqa: ARG001 (SCons action signature)
    """Boot the image with the console on this terminal; the firmware's exit code (through
    semihosting) becomes this action's result, so a failing firmware fails the upload."""
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        print("qemu-system-arm not found: run scripts/setup.sh (it installs qemu-system-arm)")
        return 1
    command = [
        qemu,
        "-machine", board.get("upload.qemu_machine"),
        "-nographic",
        "-monitor", "none",
        "-serial", "stdio",
        "-semihosting-config", "enable=on,target=native",
        "-kernel", str(source[0]),
    ]
    # upload_flags may hold several options per line, e.g. "-icount shift=0".
    for line in env.GetProjectOption("upload_flags", []):
        command += shlex.split(env.subst(line))
    print(" ".join(command))
    sys.stdout.flush()
    code = subprocess.call(command)
    print("QEMU: the firmware exited with code %d" % code)
    sys.stdout.flush()
    return code


upload = env.AddPlatformTarget(
    "upload",
    target_elf,
    env.VerboseAction(boot_in_qemu, "Booting $SOURCE in QEMU"),
    "Upload (boot in QEMU)",
)
AlwaysBuild(upload)

Default([target_elf])
