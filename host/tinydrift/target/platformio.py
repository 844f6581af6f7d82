"""PlatformIO without the internet: prepare a core directory it is happy with, and run it.

PlatformIO normally downloads a platform, a toolchain and its own SCons from its registry.
For the emulated board all three are here already: the platform lives in
firmware/platforms/tinydrift-qemu (linked by platformio.ini), the toolchain is Debian's
arm-none-eabi, and SCons is the pip-installed `scons` package. `prepare()` writes the two
package folders PlatformIO looks for, so `pio run -e mps2_an386` builds offline:

- tool-scons: the version PlatformIO 6.2 pins (~4.41101.0), with a `.piopm` naming owner
  `platformio` (that is how it recognises its own core package), and a `scons.py` that
  starts the pip-installed SCons;
- toolchain-gccarmnoneeabi-system: `bin/` links to the arm-none-eabi tools on PATH.

The core directory is build/platformio inside the repository (git-ignored), named by
`core_dir` in platformio.ini, not the user's ~/.platformio: these stand-in packages must
not shadow the real ones a user's other projects download, and deleting build/ resets
everything. Real boards' envs fetch their registry platforms into the same folder when
the user has internet.

Run `python -m tinydrift.target.platformio prepare` (scripts/setup_platformio.sh does);
it is idempotent and returns in well under a second once done.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from tinydrift.atomic import write_text
from tinydrift.errors import TinydriftError
from tinydrift import firmware

FIRMWARE_DIR = firmware.FIRMWARE_DIR
WORKSPACE = firmware.PIO_WORKSPACE
CORE_DIR = firmware.BUILD_ROOT / "platformio"
EMULATED_ENV = "mps2_an386"

# PlatformIO 6.2 asks for tool-scons ~4.41101.0 (platformio/dependencies.py).
SCONS_PACKAGE_VERSION = "4.41101.0"
TOOLCHAIN_PACKAGE = "toolchain-gccarmnoneeabi-system"
TOOLCHAIN_PREFIX = "arm-none-eabi-"
TOOLCHAIN_TOOLS = (
    "addr2line", "ar", "as", "c++", "c++filt", "cpp", "g++", "gcc", "gcc-ar", "gcc-nm",
    "gcc-ranlib", "gdb", "gprof", "ld", "nm", "objcopy", "objdump", "ranlib", "readelf",
    "size", "strings", "strip",
)  # fmt: skip

# Keep PlatformIO from phoning home: no telemetry, no upgrade checks.
OFFLINE_ENVIRONMENT = {
    "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "no",
    "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "36500",
    "PLATFORMIO_DISABLE_UPGRADE_CHECK": "true",
    "PLATFORMIO_NO_ANSI": "true",
}

SCONS_SHIM = '''\
"""Written by tinydrift's set-up: runs the pip-installed SCons for PlatformIO."""
import sys

try:
    from SCons.Script import main
except ImportError:
    sys.exit("tool-scons: the `scons` Python package is missing; run scripts/setup.sh")

main()
'''


def pio_executable() -> Path | None:
    """The `pio` installed beside this Python (the project's venv), else one on PATH."""
    beside = Path(sys.executable).parent / "pio"
    if beside.is_file():
        return beside
    found = shutil.which("pio")
    return Path(found) if found else None


def pio_environment(core_dir: Path = CORE_DIR, workspace: Path | None = WORKSPACE) -> dict[str, str]:
    """The process environment for running pio offline against `core_dir`, its builds in
    `workspace` (None: the project's own .pio, for another project than the firmware's)."""
    environment = dict(os.environ)
    environment.update(OFFLINE_ENVIRONMENT)
    environment["PLATFORMIO_CORE_DIR"] = str(core_dir)
    if workspace is not None:
        environment["PLATFORMIO_WORKSPACE_DIR"] = str(workspace)
    # pio's own scripts, and the SCons it starts, must find the venv's packages.
    bin_dir = str(Path(sys.executable).parent)
    environment["PATH"] = bin_dir + os.pathsep + environment.get("PATH", "")
    return environment


def _write_json_if_changed(path: Path, data: dict) -> bool:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if path.is_file() and path.read_text() == text:
        return False
    write_text(path, text)
    return True


def _package_metadata(kind: str, name: str, version: str, owner: str) -> dict:
    """What PlatformIO records in `.piopm` for a package it installed itself."""
    return {
        "type": kind,
        "name": name,
        "version": version,
        "spec": {"owner": owner, "id": None, "name": name, "requirements": None, "uri": None},
    }


def _prepare_scons(packages_dir: Path) -> None:
    try:
        import SCons  # noqa: F401  (only checking it is installed)
    except ImportError as exc:
        raise TinydriftError(
            "the `scons` Python package is missing (PlatformIO builds with it): "
            "run scripts/setup.sh or `.venv/bin/pip install scons==4.11.1`"
        ) from exc
    folder = packages_dir / "tool-scons"
    _write_json_if_changed(
        folder / "package.json",
        {
            "name": "tool-scons",
            "version": SCONS_PACKAGE_VERSION,
            "description": "SCons from the Python environment (prepared by tinydrift)",
        },
    )
    _write_json_if_changed(
        folder / ".piopm",
        _package_metadata("tool", "tool-scons", SCONS_PACKAGE_VERSION, "platformio"),
    )
    shim = folder / "scons.py"
    if not shim.is_file() or shim.read_text() != SCONS_SHIM:
        write_text(shim, SCONS_SHIM)


def _toolchain_version(gcc: Path) -> str:
    """gcc's version (e.g. 12.2.1) as the package version, so `pio pkg list` shows it."""
    result = subprocess.run([str(gcc), "-dumpfullversion"], capture_output=True, text=True)
    version = result.stdout.strip() if result.returncode == 0 else ""
    parts = version.split(".")
    if len(parts) == 3 and all(part.isdigit() for part in parts):
        return version
    return "0.0.0"


def _prepare_toolchain(packages_dir: Path) -> None:
    gcc = shutil.which(TOOLCHAIN_PREFIX + "gcc")
    if gcc is None:
        raise TinydriftError(
            "arm-none-eabi-gcc not found: run scripts/setup.sh "
            "(it installs gcc-arm-none-eabi and libnewlib-arm-none-eabi)"
        )
    gcc_path = Path(gcc).resolve()
    folder = packages_dir / TOOLCHAIN_PACKAGE
    version = _toolchain_version(gcc_path)
    _write_json_if_changed(
        folder / "package.json",
        {
            "name": TOOLCHAIN_PACKAGE,
            "version": version,
            "description": "The system's arm-none-eabi GCC, linked (prepared by tinydrift)",
        },
    )
    _write_json_if_changed(
        folder / ".piopm", _package_metadata("tool", TOOLCHAIN_PACKAGE, version, "tinydrift")
    )
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in TOOLCHAIN_TOOLS:
        found = shutil.which(TOOLCHAIN_PREFIX + tool)
        link = bin_dir / (TOOLCHAIN_PREFIX + tool)
        if found is None:
            continue
        target = Path(found).resolve()
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        temporary = link.with_name(link.name + ".tmp")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target)
        os.replace(temporary, link)


@contextmanager
def locked(folder: Path, lock_file: Path | None = None) -> Iterator[None]:
    """One preparation or build at a time per folder (parallel test runs, flash and bench),
    held on `lock_file` (default: a file in the folder; one that pio may delete, as it does a
    build folder it starts afresh, would let a second build in)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = lock_file or folder / ".tinydrift.lock"
    while True:
        lock = open(path, "a")
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Held: unless the file was removed while this waited (prune_model_builds removes a
        # pruned build's lock under the lock), then the lock is on a name no one else sees.
        try:
            if os.fstat(lock.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        lock.close()
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


# The same as OFFLINE_ENVIRONMENT, stored in the core dir for a plain `pio` in firmware/.
OFFLINE_SETTINGS = {"enable_telemetry": False, "check_platformio_interval": 36500}


def _prepare_settings(core_dir: Path) -> None:
    state_path = core_dir / "appstate.json"
    try:
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    except json.JSONDecodeError:
        state = {}  # pio rewrites a damaged state file too
    settings = state.setdefault("settings", {})
    if all(settings.get(name) == value for name, value in OFFLINE_SETTINGS.items()):
        return
    settings.update(OFFLINE_SETTINGS)
    write_text(state_path, json.dumps(state, indent=4))


def prepare(core_dir: Path = CORE_DIR) -> Path:
    """Make `core_dir` ready for offline builds of the emulated board; idempotent."""
    with locked(core_dir):
        packages_dir = core_dir / "packages"
        _prepare_scons(packages_dir)
        _prepare_toolchain(packages_dir)
        _prepare_settings(core_dir)
    return core_dir


def run_pio(
    arguments: Sequence[str],
    *,
    core_dir: Path = CORE_DIR,
    project_dir: Path = FIRMWARE_DIR,
    capture: bool = True,
    input_bytes: bytes | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Run `pio <arguments>` in the firmware project, offline, after `prepare()`."""
    pio = pio_executable()
    if pio is None:
        raise TinydriftError(
            "PlatformIO (`pio`) not found: run scripts/setup.sh or "
            "`.venv/bin/pip install platformio==6.2.0`"
        )
    prepare(core_dir)
    return subprocess.run(
        [str(pio), *arguments],
        cwd=project_dir,
        env=pio_environment(core_dir, WORKSPACE if Path(project_dir).resolve() == FIRMWARE_DIR.resolve() else None),
        capture_output=capture,
        input=input_bytes,
        timeout=timeout,
    )


def build(env_name: str = EMULATED_ENV, *, core_dir: Path = CORE_DIR) -> Path:
    """Build one env of the firmware project; returns its ELF. Raises with pio's output."""
    with locked(core_dir / "builds"):
        result = run_pio(["run", "--silent", "-e", env_name], core_dir=core_dir)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise TinydriftError(f"`pio run -e {env_name}` failed in {FIRMWARE_DIR}:\n{output}")
    elf = WORKSPACE / "build" / env_name / "firmware.elf"
    if not elf.is_file():
        raise TinydriftError(f"`pio run -e {env_name}` left no {elf}")
    return elf


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments == ["prepare"]:
        try:
            core_dir = prepare()
        except TinydriftError as exc:
            print(f"setup_platformio: {exc}", file=sys.stderr)
            return 1
        print(f"PlatformIO ready offline for the emulated board (core dir {core_dir})")
        return 0
    print("usage: python -m tinydrift.target.platformio prepare", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
