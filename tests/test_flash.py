"""`tinydrift flash`: what a user without pio, a platform, a model or a board is told, and a
real upload to the emulated board with another model folder than the project's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinydrift.cli.main import TinydriftGroup
from tinydrift.target import emulator, platformio
from tinydrift.cli.device import flash_command
from tinydrift.target.flash import build_dir_for, build_lock, check_model_dir, flash, no_board_reason, project_envs
from tinydrift.link.replay import write_pcm
from tinydrift.errors import TinydriftError
from tinydrift.firmware import REPO_ROOT
from tinydrift.modeldir import ModelDir

needs_pio = pytest.mark.skipif(platformio.pio_executable() is None, reason="PlatformIO is not installed")
REAL_BOARDS = {"nano33ble": "nordicnrf52", "nano33ble_renode": "nordicnrf52", "esp32s3": "espressif32",
               "nucleo_f446re": "ststm32", "disco_f407vg": "ststm32"}


def cli(*arguments):
    group = TinydriftGroup()
    group.add_command(flash_command)
    return CliRunner().invoke(group, ["flash", *arguments])


def test_without_pio_the_error_says_how_to_install_it(tmp_path):
    with pytest.raises(TinydriftError, match=r"PlatformIO \(`pio`\) not found: run scripts/setup.sh"):
        flash("mps2_an386", pio=tmp_path / "no-pio-here")


@needs_pio
def test_an_unknown_env_lists_the_project_envs():
    with pytest.raises(TinydriftError) as error:
        flash("arduino_uno")
    message = str(error.value)
    assert "no env `arduino_uno`" in message
    assert all(env in message for env in ["mps2_an386", *REAL_BOARDS])


@needs_pio
def test_an_env_that_builds_no_model_is_refused_not_reported_built_with_it():
    """Trial 14: `flash --env mps2_an386_echo --model DIR --build-only` said "built ... with the
    model in DIR" of the port's echo app, which holds no model."""
    with pytest.raises(TinydriftError) as error:
        flash("mps2_an386_echo", REPO_ROOT / "models" / "kws", build_only=True)
    message = str(error.value)
    assert message.startswith("env `mps2_an386_echo` builds no model (it leaves out the tinydrift app")
    assert message.endswith("envs with a model: " + ", ".join(sorted(["mps2_an386", *REAL_BOARDS])))


def test_the_project_envs_resolve_through_extends():
    envs = project_envs()
    assert envs["nano33ble_renode"]["platform"] == "nordicnrf52"  # from env:nano33ble
    assert "TD_NANO33BLE_CONSOLE_SERIAL1" in envs["nano33ble_renode"]["build_flags"]
    assert envs["mps2_an386"]["extra_scripts"] == "pre:scripts/tinydrift_build.py"  # from [env]
    assert envs["mps2_an386_echo"]["extra_scripts"] == ""


@needs_pio
@pytest.mark.parametrize("env_name", sorted(REAL_BOARDS))
def test_a_real_board_without_its_platform_is_a_clear_error(env_name, tmp_path):
    """The boards' registry platforms cannot be downloaded here: flash says which platform
    is missing and how to install it, before pio tries the network."""
    platform = REAL_BOARDS[env_name]
    with pytest.raises(TinydriftError, match=rf"env {env_name} needs the PlatformIO platform `{platform}`.*"
                                             rf"pio pkg install -e {env_name}"):
        flash(env_name, core_dir=tmp_path / "core")


@needs_pio
def test_the_command_line_reports_one_line_and_exit_code_1():
    result = cli("--env", "nano33ble", "--model", str(REPO_ROOT / "models" / "kws"))
    # the platform is missing here unless someone installed it with the internet
    if (platformio.CORE_DIR / "platforms" / "nordicnrf52").exists():
        pytest.skip("nordicnrf52 is installed on this machine")
    assert result.exit_code == 1
    assert re.fullmatch(r"error: env nano33ble needs the PlatformIO platform `nordicnrf52`[^\n]*\n", result.output)


def test_model_folders_without_generated_files_are_refused(tmp_path):
    with pytest.raises(TinydriftError, match="not found"):
        check_model_dir(tmp_path / "absent")
    (tmp_path / "empty" / "include").mkdir(parents=True)
    with pytest.raises(TinydriftError, match=r"no td_model_NAME.h; run `tinydrift export"):
        check_model_dir(tmp_path / "empty")
    partial = tmp_path / "partial" / "include"
    shutil.copytree(REPO_ROOT / "models" / "kws" / "include", partial)
    (partial / "td_monitor_config_kws.h").unlink()
    with pytest.raises(TinydriftError, match="missing td_monitor_config_kws.h"):
        check_model_dir(partial.parent)
    assert check_model_dir(REPO_ROOT / "models" / "kws") == REPO_ROOT / "models" / "kws" / "include"
    two = tmp_path / "two"
    shutil.copytree(REPO_ROOT / "models" / "kws", two)
    for generated in ("td_model_kws.h", "td_model_kws.c", "td_reference_kws.h", "td_monitor_config_kws.h"):
        shutil.copy(two / "include" / generated, two / "include" / generated.replace("kws", "old"))
    with pytest.raises(TinydriftError, match=r"exports of several models \(td_model_kws.h, td_model_old.h\), and a "
                                             r"build takes one"):
        check_model_dir(two)
    ModelDir(two).remove_exports_except("kws")  # what export does once it has written its own
    assert sorted(p.name for p in (two / "include").iterdir()) == [
        "td_model_kws.c", "td_model_kws.h", "td_monitor_config_kws.h", "td_reference_kws.h"]
    assert check_model_dir(two) == two / "include"


def test_a_keyword_export_from_before_the_loudness_value_is_refused(tmp_path):
    """The app's keyword summary is 42 values (40 channel means, the window's loudness and
    quiet level); an older export's 41- or 40-value config would fail the app's start on the
    board, so the host refuses it first and says to export again."""
    old = tmp_path / "old"
    shutil.copytree(REPO_ROOT / "models" / "kws", old, ignore=shutil.ignore_patterns("*.keras"))
    header = old / "include" / "td_monitor_config_kws.h"
    assert "#define TD_MONITOR_CONFIG_KWS_N_SUMMARY 42\n" in header.read_text()
    header.write_text(header.read_text().replace("_N_SUMMARY 42\n", "_N_SUMMARY 41\n"))
    with pytest.raises(TinydriftError, match=r"41 summary values, from before the keyword summary gained the "
                                             r"window's loudness and quiet level \(42\); run `tinydrift export --model"):
        check_model_dir(old)


def test_a_folder_mixing_two_exports_is_refused(tmp_path):
    """The device is built from include/ and the host reads its frames by reference.json:
    files of two exports would make the host misread every frame."""
    import json

    other = tmp_path / "other_reference"
    shutil.copytree(REPO_ROOT / "models" / "kws", other, ignore=shutil.ignore_patterns("*.keras"))
    reference = json.loads((other / "reference.json").read_text())
    (other / "reference.json").write_text(json.dumps({**reference, "model_hash": "ab" * 32}))
    with pytest.raises(TinydriftError, match=r"reference.json describes model kws \(abababababab\) and include/ holds "
                                             r"kws of another export"):
        check_model_dir(other)
    renamed = tmp_path / "renamed"
    shutil.copytree(REPO_ROOT / "models" / "kws", renamed, ignore=shutil.ignore_patterns("*.keras"))
    (renamed / "reference.json").write_text(json.dumps({**reference, "name": "kws_old"}))
    with pytest.raises(TinydriftError, match="describes model kws_old"):
        check_model_dir(renamed)
    retrained = tmp_path / "retrained"
    shutil.copytree(REPO_ROOT / "models" / "kws", retrained, ignore=shutil.ignore_patterns("*.keras"))
    (retrained / "model_int8.tflite").write_bytes((retrained / "model_int8.tflite").read_bytes() + b"\0")
    with pytest.raises(TinydriftError, match="model_int8.tflite is not the model reference.json and include/ were"):
        check_model_dir(retrained)


def test_upload_output_without_a_board_is_recognised():
    outputs = {
        "Looking for upload port...\nError: Please specify `upload_port` for environment or use global `--upload-port` option.": "upload_port",
        "A fatal error occurred: Could not open port /dev/ttyUSB0: [Errno 2] No such file or directory: '/dev/ttyUSB0'": "Could not open port",
        "A fatal error occurred: Failed to connect to ESP32-S3: Timed out waiting for packet header": "Failed to connect",
        "Error: libusb_open() failed with LIBUSB_ERROR_ACCESS\nError: open failed": "libusb_open",
        "No device matching following was found: ...": "No device matching",
    }
    for output, expected in outputs.items():
        assert expected in (no_board_reason(output) or ""), output
    assert no_board_reason("Linking .pio/build/nano33ble/firmware.elf\nSUCCESS") is None


@needs_pio
@pytest.mark.skipif(shutil.which(emulator.QEMU) is None, reason="needs qemu-system-arm")
def test_flash_builds_the_chosen_model_and_boots_it_on_the_emulated_board(tmp_path, app_clips):
    """A copy of the project's model with another hash: the firmware built for that folder
    (in a build folder of its own) announces that hash, then plays a clip file given to
    QEMU through the upload flags and exits with 0."""
    include = tmp_path / "other_model" / "include"
    shutil.copytree(REPO_ROOT / "models" / "kws" / "include", include)
    reference = include / "td_reference_kws.h"
    text = reference.read_text()
    old_hash = re.search(r'#define TD_KWS_MODEL_HASH "([0-9a-f]{64})"', text).group(1)
    new_hash = "5ca1ab1e" + old_hash[8:]
    id_bytes = ", ".join(f"0x{b:02x}" for b in bytes.fromhex(new_hash[:16]))
    text = text.replace(old_hash, new_hash)
    text = re.sub(r"td_kws_model_id\[8\] = \{[^}]*\}", f"td_kws_model_id[8] = {{{id_bytes}}}", text)
    reference.write_text(text)

    pcm = write_pcm(app_clips("test").audio[:2], tmp_path / "two.pcm")
    build_dir = build_dir_for(include)
    try:
        result = flash("mps2_an386", include.parent, capture=True, timeout=300,
                       upload_flags=["-semihosting-config", f"enable=on,target=native,arg=fw,arg=audio={pcm}"])
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)  # a folder per model path: do not pile them up
    assert result.exit_code == 0, result.output[-3000:]
    assert result.elf.parent.parent == build_dir  # not the default build folder
    assert f"tinydrift app board=mps2_an386 model={new_hash[:16]} " in result.output
    assert "QEMU: the firmware exited with code 0" in result.output


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = []
        for task in Path(f"/proc/{parent}/task").glob("*"):  # children of every thread (SCons runs jobs in threads)
            try:
                kids += [int(k) for k in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
        found += kids
        frontier += kids
    return found


def _is_running_qemu(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            alive = stat.read().rsplit(")", 1)[1].split()[0] != "Z"
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return alive and b"qemu-system-arm" in cmdline.read()
    except FileNotFoundError:
        return False


@needs_pio
@pytest.mark.skipif(shutil.which(emulator.QEMU) is None, reason="needs qemu-system-arm")
def test_flash_killed_with_sigkill_takes_the_emulated_board_along():
    """pio boots QEMU as a grandchild of tinydrift; a SIGKILL of tinydrift must not leave it
    running (a watchdog kills pio's process group when tinydrift dies)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "host"))
    proc = subprocess.Popen([sys.executable, "-m", "tinydrift", "flash", "--env", "mps2_an386",
                             "--model", str(REPO_ROOT / "models" / "kws")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 300  # the build, when nothing is cached
        qemu = []
        while not qemu and time.monotonic() < deadline and proc.poll() is None:
            qemu = [p for p in _descendants(proc.pid) if _is_running_qemu(p)]
            time.sleep(0.2)
        assert qemu, "flash never booted QEMU"
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_is_running_qemu(p) for p in qemu) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_is_running_qemu(p) for p in qemu), "QEMU outlived a SIGKILLed `tinydrift flash`"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_other_models_builds_beyond_the_newest_few_are_removed_but_not_one_being_built(tmp_path):
    """Every folder ever flashed or emulated kept its firmware build under firmware/.pio
    (32 of them, 63 MB, after one user's afternoon)."""
    import fcntl
    import os

    from tinydrift.target.flash import prune_model_builds

    builds = []
    for k in range(12):
        build = tmp_path / f"build-model-{k:012x}"
        (build / "mps2_an386").mkdir(parents=True)
        (build / "mps2_an386" / "firmware.elf").write_bytes(b"elf")
        build_lock(build).touch()  # flash's, left by its build
        os.utime(build, (1_000_000 + k, 1_000_000 + k))  # k = 11 the newest, all idle for years
        builds.append(build)
    (tmp_path / "build").mkdir()  # the project model's own build: never a candidate
    with open(build_lock(builds[0]), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a build under way in the oldest
        removed = prune_model_builds(builds[5], keep=4)
    kept = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert sorted(removed) == builds[1:5] + builds[6:9]
    os.utime(builds[9], (1_000_000, 1_000_000))
    os.utime(builds[10], None)  # built a moment ago: kept, however many are newer
    assert sorted(prune_model_builds(builds[5], keep=1)) == [builds[0], builds[9], builds[11]]
    assert kept == sorted(["build", builds[0].name, builds[5].name] + [b.name for b in builds[9:]])
    # their locks go with them, under the lock; one left from before goes too (trial 18: 80
    # empty lock files), and the kept builds keep theirs
    (tmp_path / "build-model-0000000000ff.lock").touch()
    prune_model_builds(builds[5], keep=1)
    kept_locks = sorted(build_lock(b).name for b in (builds[5], builds[10]))
    assert sorted(p.name for p in tmp_path.glob("*.lock")) == kept_locks


def test_a_build_that_waited_on_a_lock_removed_under_it_takes_a_new_one(tmp_path):
    """prune_model_builds unlinks a pruned build's lock while holding it: a build that was
    waiting on that file must not go on holding a lock on a name no one else sees, while
    another build takes a new file of that name."""
    import fcntl
    import threading

    from tinydrift.atomic import try_hold
    from tinydrift.target import platformio

    lock_path = tmp_path / "build-model-000000000001.lock"
    held = open(lock_path, "a")
    fcntl.flock(held, fcntl.LOCK_EX)
    inside, done = threading.Event(), threading.Event()

    def build():
        with platformio.locked(tmp_path / "build-model-000000000001", lock_path):
            inside.set()
            done.wait(10)

    waiter = threading.Thread(target=build)
    waiter.start()
    assert not inside.wait(0.3)  # waiting on the held lock
    lock_path.unlink()  # as prune does, under the lock
    fcntl.flock(held, fcntl.LOCK_UN)
    held.close()
    assert inside.wait(5)
    with open(lock_path, "a") as other:  # another build now: the waiter holds the lock it would take
        assert not try_hold(other)
    done.set()
    waiter.join(5)


def test_two_builds_of_one_new_model_folder_at_once_both_succeed(tmp_path):
    """Two `emulate --model` of a folder never built before, started together: one failed with
    the linker's "cannot find ....o". The lock file sat inside the build folder, and pio,
    starting that folder afresh, deleted it while the first build ran, so the second took a
    new lock and built into the same folder. The lock is now beside the folder. The second
    build here starts once the first one's pio has emptied the folder."""
    import shutil as sh

    model = tmp_path / "kws copy"
    sh.copytree(REPO_ROOT / "models" / "kws", model)
    build = build_dir_for(ModelDir(model).include)
    command = [sys.executable, "-m", "tinydrift", "flash", "--env", platformio.EMULATED_ENV, "--model", str(model),
               "--build-only"]
    try:
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (build / "project.checksum").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.poll() is None, "the first build ended before the second could start beside it"
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done = [run.communicate(timeout=600) for run in (first, second)]
        assert [first.returncode, second.returncode] == [0, 0], [err[-2000:] for _, err in done]
        assert build_lock(build).is_file() and not (build / ".tinydrift.lock").exists()
    finally:
        sh.rmtree(build, ignore_errors=True)


def test_a_wake_word_folder_without_a_monitor_is_said_to_run_the_detector_alone(tmp_path):
    """flash and emulate built a wake-word export without a calibrated monitor in silence:
    the board then raised no drift alarm, and nothing said none could come."""
    import json

    folder = tmp_path / "nabu"
    folder.mkdir()
    (folder / "detector.json").write_text(json.dumps({"name": "okay_nabu", "model_hash": "0" * 64}))
    result = CliRunner().invoke(flash_command, ["--env", platformio.EMULATED_ENV, "--build-only",
                                               "--model", str(folder)])
    assert f"{folder} has no calibrated monitor, so the board runs the detector alone" in result.stderr
    assert f"tinydrift wakeword calibrate MODEL --out {folder}" in result.stderr


def test_a_monitor_header_the_folder_json_does_not_hold_is_refused(tmp_path):
    """Trial 13 built a wake-word folder holding another model's monitor.json and monitor
    header: emulate ran the detector alone without a word, and only report refused it later.
    The header built in and the JSON the host reads the frames by must be one monitor."""
    import json

    pytest.importorskip("pymicro_wakeword", reason="the wakeword extra is not installed (scripts/setup.sh)")
    from tinydrift.cli.main import main

    detector = tmp_path / "alexa"
    result = CliRunner().invoke(main, ["wakeword", "export", "alexa", "--out", str(detector)])
    assert result.exit_code == 0, result.output
    assert check_model_dir(detector) == detector / "include"  # a detector alone
    stray = detector / "include" / "td_monitor_config_okay_nabu.h"
    shutil.copy(REPO_ROOT / "models" / "kws" / "include" / "td_monitor_config_kws.h", stray)
    with pytest.raises(TinydriftError, match=r"td_monitor_config_okay_nabu.h belongs to another model than alexa"):
        check_model_dir(detector)
    stray.rename(detector / "include" / "td_monitor_config_alexa.h")
    with pytest.raises(TinydriftError, match=r"include/td_monitor_config_alexa.h without the monitor.json it was "
                                             r"calibrated with"):
        check_model_dir(detector)
    (detector / "monitor.json").write_text(json.dumps({"name": "okay_nabu", "model_hash": "ab" * 32,
                                                       "monitor_config": {}}))
    with pytest.raises(TinydriftError, match=r"monitor.json was calibrated for another model \(hash abababababab\)"):
        check_model_dir(detector)

    swapped = tmp_path / "kws"
    shutil.copytree(REPO_ROOT / "models" / "kws", swapped, ignore=shutil.ignore_patterns("*.keras"))
    header = swapped / "include" / "td_monitor_config_kws.h"
    header.write_text(re.sub(r'_HASH "[0-9a-f]{16}"', '_HASH "0123456789abcdef"', header.read_text()))
    with pytest.raises(TinydriftError, match=r"include/td_monitor_config_kws.h is not the monitor reference.json "
                                             r"holds \(config hash [0-9a-f]{12}\)"):
        check_model_dir(swapped)
    header.unlink()
    with pytest.raises(TinydriftError, match=r"missing td_monitor_config_kws.h"):
        check_model_dir(swapped)
