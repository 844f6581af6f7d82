"""`tinydrift flash`: build the firmware for one PlatformIO env with a model's headers in
place, and upload it (for the emulated board, `upload` boots it in QEMU).

The model is the include/ folder `tinydrift export` wrote; the firmware's pre: script
(firmware/scripts/tinydrift_build.py) takes it from the environment variable
TINYDRIFT_MODEL_DIR. Another model than the project's builds in its own build folder, so
switching models never rebuilds (or disturbs) the default one.

What can be missing, each a TinydriftError that says what to do: pio itself, the env, the
model's generated files, the env's platform (real boards use registry platforms that need
the internet once), QEMU for the emulated board, the board on the upload port.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tinydrift.atomic import try_hold
from tinydrift.child import group_watchdog, tied_to_this_process
from tinydrift.errors import TinydriftError
from tinydrift.firmware import REPO_ROOT
from tinydrift.modeldir import ModelDir, single_export_name
from tinydrift.target import platformio

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "kws"
MODEL_DIR_VARIABLE = "TINYDRIFT_MODEL_DIR"  # read by firmware/scripts/tinydrift_build.py
LOCAL_PLATFORM = re.compile(r"^(symlink|file)://(.+)$")

# What pio and the upload tools print when no board answers on the upload port.
NO_BOARD_PATTERNS = (
    r"Please specify `upload_port`",
    r"could not open port",
    r"No such file or directory: '/dev/",
    r"No device found",
    r"No DFU capable USB device",
    r"Timed out waiting for packet header",
    r"Failed to connect to ESP32",
    r"SAM-BA operation failed",
    r"No device matching",
    r"Error: open failed",
    r"libusb_open\(\) failed",
    r"unable to find a matching CMSIS-DAP device",
    r"Error connecting to the target",
)


@dataclass
class FlashResult:
    env: str
    model_dir: Path
    elf: Path
    exit_code: int  # the upload's; for the emulated board, the firmware's exit code
    output: str  # pio's output when captured, else ""


def project_envs(firmware_dir: Path = platformio.FIRMWARE_DIR) -> dict[str, dict[str, str]]:
    """Each env of platformio.ini with its options resolved through `extends` and [env]."""
    parser = configparser.ConfigParser(interpolation=None)
    ini = firmware_dir / "platformio.ini"
    if not parser.read(ini):
        raise TinydriftError(f"{ini} not found: run tinydrift from its repository")
    common = dict(parser["env"]) if parser.has_section("env") else {}
    envs = {}
    for section in parser.sections():
        if not section.startswith("env:"):
            continue
        chain, current = [], parser[section]
        while True:
            chain.append(dict(current))
            parent = current.get("extends")
            if not parent or not parser.has_section(parent.strip()):
                break
            current = parser[parent.strip()]
        options = dict(common)
        for layer in reversed(chain):
            options.update(layer)
        envs[section[4:]] = options
    return envs


def check_model_dir(model_dir: Path) -> Path:
    """The include folder holding exactly one generated model, or a TinydriftError."""
    model_dir = Path(model_dir)
    include = ModelDir(model_dir).include if ModelDir(model_dir).include.is_dir() else model_dir
    if not include.is_dir():
        raise TinydriftError(f"model folder {model_dir} not found: give a folder made by `tinydrift export`")
    name = single_export_name(include, model_dir)
    # A streaming model (`tinydrift wakeword export`) needs no monitor config: without one the app runs it as a
    # detector alone, with one (`tinydrift wakeword calibrate`) the monitor too.
    streaming = f"#define TD_{name.upper()}_STREAMING 1" in (include / f"td_model_{name}.h").read_text()
    needed = (f"td_model_{name}.c", f"td_reference_{name}.h", *(() if streaming else (f"td_monitor_config_{name}.h",)))
    missing = [f for f in needed if not (include / f).is_file()]
    command = "tinydrift wakeword export MODEL --out" if streaming else "tinydrift export --model"
    if missing:
        raise TinydriftError(f"{include}: missing {', '.join(missing)}; run `{command} {model_dir}`")
    _check_one_export(ModelDir(model_dir), include, name, f"run `{command} {model_dir}` again")
    config_header = include / f"td_monitor_config_{name}.h"
    redo = "tinydrift wakeword calibrate MODEL --out" if streaming else "tinydrift export --model"
    if config_header.is_file():
        from tinydrift.codegen.monitor_header import check_header_abi

        check_header_abi(config_header, f"run `{redo} {model_dir}` again")
        keyword = not streaming and "_SUMMARY_GRID" not in (include / f"td_reference_{name}.h").read_text()
        old = next((n for n in (40, 41) if f"#define TD_MONITOR_CONFIG_{name.upper()}_N_SUMMARY {n}\n"
                    in config_header.read_text()), None)
        if keyword and old is not None:
            raise TinydriftError(f"{config_header}: a monitor config of {old} summary values, from before the keyword "
                                 f"summary gained the window's loudness and quiet level (42); run `{redo} {model_dir}` "
                                 "again")
    _check_monitor_header(ModelDir(model_dir), include, config_header, f"run `{redo} {model_dir}` again")
    return include


def _check_one_export(folder: ModelDir, include: Path, name: str, remedy: str) -> None:
    """The folder's JSON and include/ come from one export: the device is built from
    include/, and the host reads the device's frames by the JSON."""
    if folder.reference_json.is_file():
        data = folder.reference()
    elif folder.detector_json.is_file():
        data = folder.detector()
    else:
        return  # an include folder given on its own
    source = folder.reference_json.name if folder.reference_json.is_file() else folder.detector_json.name
    header = (include / f"td_reference_{name}.h").read_text(errors="replace")
    if data["name"] != name or f'"{data["model_hash"]}"' not in header:
        raise TinydriftError(f"{folder.path}: {source} describes model {data['name']} ({data['model_hash'][:12]}) and "
                             f"include/ holds {name} of another export, so the host would misread the device's "
                             f"frames; {remedy}")
    if source == folder.reference_json.name and folder.int8_model.is_file():
        if not folder.exported_from(folder.int8_model.read_bytes()):
            raise TinydriftError(f"{folder.path}: {folder.int8_model.name} is not the model {source} and include/ were "
                                 f"exported from; {remedy}")


def _check_monitor_header(folder: ModelDir, include: Path, config_header: Path, remedy: str) -> None:
    """The monitor built into the device is the one the host reads its frames by: the folder's
    JSON (monitor.json for a wake-word model, reference.json otherwise) and the header agree."""
    strays = sorted(p.name for p in include.glob("td_monitor_config_*.h") if p != config_header)
    if strays:
        raise TinydriftError(f"{include}: {', '.join(strays)} belongs to another model than "
                             f"{config_header.name[len('td_monitor_config_'):-2]}, so the device would run without "
                             f"the monitor you meant; remove it, or {remedy}")
    if not (folder.reference_json.is_file() or folder.detector_json.is_file()):
        return  # an include folder given on its own
    if folder.is_detector and not folder.monitor_json.is_file():
        if config_header.is_file():
            raise TinydriftError(f"{folder.path}: include/{config_header.name} without the {folder.monitor_json.name} "
                                 f"it was calibrated with, so the host could not read the device's monitor; {remedy}")
        return  # a detector alone, as `tinydrift wakeword export` leaves it
    from tinydrift.codegen.monitor_header import config_hash
    from tinydrift.monitor.config import MonitorConfig

    source = folder.monitor_json if folder.is_detector else folder.reference_json
    expected = config_hash(MonitorConfig.from_dict(folder.monitor_config()))[:16]
    if not config_header.is_file():
        raise TinydriftError(f"{folder.path}: {source.name} holds a calibrated monitor but "
                             f"include/{config_header.name} is missing; {remedy}")
    if f'_HASH "{expected}"' not in config_header.read_text(errors="replace"):
        raise TinydriftError(f"{folder.path}: include/{config_header.name} is not the monitor {source.name} holds "
                             f"(config hash {expected[:12]}), so the host would misread the device's drift; {remedy}")


def check_platform(env_name: str, options: dict[str, str], core_dir: Path) -> None:
    """The env's platform must be there: a local folder, or a registry platform installed in
    the core dir (pio would try to download it, which fails offline with a long trace)."""
    platform = options.get("platform", "").strip()
    local = LOCAL_PLATFORM.match(platform)
    if local:
        folder = Path(local.group(2))
        folder = folder if folder.is_absolute() else platformio.FIRMWARE_DIR / folder
        if not (folder / "platform.json").is_file():
            raise TinydriftError(f"env {env_name}: its platform folder {folder} is missing")
        return
    name = platform.split("@")[0].split("/")[-1]
    if not name:
        raise TinydriftError(f"env {env_name} names no platform in platformio.ini")
    if not (core_dir / "platforms" / name / "platform.json").is_file():
        raise TinydriftError(
            f"env {env_name} needs the PlatformIO platform `{name}`, which is not installed in {core_dir}: "
            f"install it once with the internet (cd firmware && pio pkg install -e {env_name}), then flash again")


def builds_the_app(options: dict[str, str]) -> bool:
    """Whether an env builds the tinydrift app with a model in it (its build script puts the
    model's include/ in), not a port check such as the echo app."""
    ignored = {name.strip() for name in re.split(r"[,\s]+", options.get("lib_ignore", "")) if name.strip()}
    return "tinydrift_build.py" in options.get("extra_scripts", "") and "tinydrift" not in ignored


def no_board_reason(output: str) -> str | None:
    """The line of pio's output saying no board answered, if there is one."""
    for line in output.splitlines():
        if any(re.search(pattern, line) for pattern in NO_BOARD_PATTERNS):
            return line.strip()
    return None


def build_dir_for(include: Path) -> Path | None:
    """None (pio's default) for the project's model; a folder of its own for any other."""
    if include.resolve() == (DEFAULT_MODEL_DIR / "include").resolve():
        return None
    digest = hashlib.sha256(str(include.resolve()).encode()).hexdigest()[:12]
    return platformio.WORKSPACE / f"build-model-{digest}"


# Firmware builds of other model folders (a few MB each, in PlatformIO's workspace) kept besides the
# one just built: beyond these, the ones not built for an hour are removed, or every folder
# ever flashed or emulated would keep its build there for good. (Within the hour: a test
# run, or a script, may still hold a firmware image it built.)
MODEL_BUILDS_KEPT = 8
MODEL_BUILD_IDLE_S = 3600.0


def build_lock(build_dir: Path) -> Path:
    """The lock file of a model's build folder, beside it: pio empties a build folder it
    starts afresh (a new folder, or one built with other settings), lock file and all, and
    two `emulate --model` of one new folder once built into it together (missing .o files)."""
    return build_dir.with_name(build_dir.name + ".lock")


def prune_model_builds(current: Path, keep: int = MODEL_BUILDS_KEPT, idle_s: float = MODEL_BUILD_IDLE_S) -> list[Path]:
    """Remove the build-model-* folders beside `current` (just built, kept) beyond the `keep`
    most recently built that were not built for `idle_s`, except one whose build is under
    way; returns those removed."""
    others = sorted((p for p in current.parent.glob("build-model-*") if p.is_dir() and p != current),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    removed = []
    for old in (p for p in others[max(0, keep - 1):] if now - p.stat().st_mtime > idle_s):
        with contextlib.suppress(OSError), open(build_lock(old), "a") as lock:
            if not try_hold(lock):  # flash's: a build there now
                continue
            shutil.rmtree(old)
            removed.append(old)
            build_lock(old).unlink()  # held: one waiting on it finds it gone and takes a new one
    # locks of builds removed before their locks were (each was kept then)
    for stale in current.parent.glob("build-model-*.lock"):
        if not stale.with_name(stale.name.removesuffix(".lock")).exists():
            with contextlib.suppress(OSError), open(stale, "a") as lock:
                if try_hold(lock):
                    stale.unlink()
    return removed


def flash(env_name: str, model_dir: Path | None = None, *, upload_port: str | None = None,
          upload_flags: Sequence[str] = (), build_only: bool = False, capture: bool = False,
          pio: Path | None = None, core_dir: Path = platformio.CORE_DIR, timeout: float | None = None) -> FlashResult:
    """Build `env_name` with the model in `model_dir` (default models/kws), then upload it.

    `upload_flags` reach the upload tool (for the emulated board: QEMU options, e.g.
    `-icount shift=0`). With `capture`, pio's output is returned instead of shown."""
    pio = pio if pio is not None else platformio.pio_executable()
    if pio is None or not Path(pio).is_file():
        raise TinydriftError("PlatformIO (`pio`) not found: run scripts/setup.sh or "
                             "`.venv/bin/pip install platformio==6.2.0`")
    envs = project_envs()
    apps = sorted(name for name, options in envs.items() if builds_the_app(options))
    if env_name not in envs:
        raise TinydriftError(f"no env `{env_name}` in firmware/platformio.ini; envs: {', '.join(apps)}")
    options = envs[env_name]
    if not builds_the_app(options):
        raise TinydriftError(f"env `{env_name}` builds no model (it leaves out the tinydrift app: a port check, "
                             f"`pio run -e {env_name}` in firmware/ builds it); envs with a model: {', '.join(apps)}")
    include = check_model_dir(model_dir if model_dir is not None else DEFAULT_MODEL_DIR)
    platformio.prepare(core_dir)
    check_platform(env_name, options, core_dir)
    emulated = LOCAL_PLATFORM.match(options.get("platform", "").strip()) is not None
    if emulated and not build_only and shutil.which("qemu-system-arm") is None:
        raise TinydriftError("qemu-system-arm not found: the emulated board's upload boots it "
                             "(scripts/setup.sh installs it)")

    environment = platformio.pio_environment(core_dir)
    environment[MODEL_DIR_VARIABLE] = str(include.resolve())
    build_dir = build_dir_for(include)
    if build_dir is not None:
        environment["PLATFORMIO_BUILD_DIR"] = str(build_dir)
    if upload_flags:
        environment["PLATFORMIO_UPLOAD_FLAGS"] = " ".join(upload_flags)
    elf = (build_dir or platformio.WORKSPACE / "build") / env_name / "firmware.elf"

    def run(arguments: list[str], show: bool) -> subprocess.CompletedProcess:
        # Its own process group: on a timeout or any signal that stops tinydrift, QEMU (pio's
        # grandchild) goes down with pio.
        process = subprocess.Popen([str(pio), *arguments], cwd=platformio.FIRMWARE_DIR, env=environment,
                                   stdout=None if show else subprocess.PIPE, stderr=None if show else subprocess.PIPE,
                                   start_new_session=True, **tied_to_this_process())
        try:
            with group_watchdog(process.pid):  # even SIGKILL of tinydrift takes pio's QEMU along
                stdout, stderr = process.communicate(timeout=timeout)
        except BaseException as exc:  # the timeout, Ctrl-C, or SIGTERM/SIGHUP (SystemExit)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
            raise TinydriftError(f"`pio {' '.join(arguments)}` did not finish within {timeout:g} s; stopped") from None
        return subprocess.CompletedProcess(process.args, process.returncode, stdout or b"", stderr or b"")

    # The same lock as platformio.build for the default build folder: one build at a time.
    with platformio.locked(build_dir or core_dir / "builds", None if build_dir is None else build_lock(build_dir)):
        built = run(["run", "--silent", "-e", env_name], show=False)
        if built.returncode != 0 or not elf.is_file():
            output = (built.stdout + built.stderr).decode(errors="replace")
            raise TinydriftError(f"`pio run -e {env_name}` failed (model {include}):\n{output[-4000:]}")
        if build_dir is not None:
            os.utime(build_dir)  # most recently built
            prune_model_builds(build_dir)
    if build_only:
        return FlashResult(env_name, include, elf, 0, "")
    # The upload finds the image built and only uploads (for QEMU: runs until the firmware exits).
    arguments = ["run", "-e", env_name, "-t", "upload"]
    if upload_port:
        arguments += ["--upload-port", upload_port]
    uploaded = run(arguments, show=not capture)
    output = "" if not capture else (uploaded.stdout + uploaded.stderr).decode(errors="replace")
    if uploaded.returncode != 0 and not emulated:
        reason = no_board_reason(output) if capture else "see pio's output above"
        if reason is not None:
            raise TinydriftError(
                f"upload to {env_name} failed ({reason}): connect the board"
                + (" (double-tap reset on the Nano 33 BLE)" if env_name.startswith("nano33ble") else "")
                + ", or give its port with --port")
        raise TinydriftError(f"upload to {env_name} failed:\n{output[-4000:]}")
    return FlashResult(env_name, include, elf, uploaded.returncode, output)
