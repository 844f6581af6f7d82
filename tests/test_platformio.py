"""PlatformIO offline: the set-up's preparation, a from-scratch `pio run` on a fresh core
directory with every network route closed, and `pio run -t upload` booting QEMU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tinydrift.target import platformio

pytestmark = pytest.mark.skipif(
    platformio.pio_executable() is None,
    reason="PlatformIO is not installed (pip install platformio==6.2.0; scripts/setup.sh does)",
)

# A proxy nobody listens on: any attempt to reach a registry fails instead of succeeding.
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
              "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}


def test_prepare_writes_the_packages_pio_expects_and_is_idempotent(tmp_path):
    core = platformio.prepare(tmp_path / "core")
    scons = core / "packages" / "tool-scons"
    assert json.loads((scons / "package.json").read_text())["version"] == "4.41101.0"
    meta = json.loads((scons / ".piopm").read_text())
    assert meta["spec"]["owner"] == "platformio" and meta["name"] == "tool-scons"
    toolchain = core / "packages" / platformio.TOOLCHAIN_PACKAGE / "bin"
    gcc = toolchain / "arm-none-eabi-gcc"
    assert gcc.resolve() == (toolchain.parent / "bin" / "arm-none-eabi-gcc").resolve()
    assert os.path.samefile(gcc, shutil.which("arm-none-eabi-gcc"))

    files = sorted(p for p in core.rglob("*") if p.is_file() and p.name != ".tinydrift.lock")
    before = {p: p.stat().st_mtime_ns for p in files}
    platformio.prepare(tmp_path / "core")
    assert {p: p.stat().st_mtime_ns for p in files} == before


def pio(arguments, core, build_dir, input_bytes=None, extra_environment=None):
    platformio.prepare(core)
    environment = platformio.pio_environment(core)
    environment.update(NO_NETWORK)
    environment.update(extra_environment or {})
    environment["PLATFORMIO_BUILD_DIR"] = str(build_dir)
    return subprocess.run([str(platformio.pio_executable()), *arguments], cwd=platformio.FIRMWARE_DIR,
                          env=environment, input=input_bytes, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A core directory and build directory no earlier run has touched."""
    root = tmp_path_factory.mktemp("pio")
    return root / "core", root / "build"


def test_pio_run_builds_offline_from_a_fresh_core_dir(fresh):
    core, build_dir = fresh
    result = pio(["run", "-e", "mps2_an386"], core, build_dir)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, output
    assert "SUCCESS" in output
    elf = build_dir / "mps2_an386" / "firmware.elf"
    header = elf.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 40  # EM_ARM
    # the platform is a link to the repository's folder, not a copy
    assert (core / "platforms" / "tinydrift-qemu.pio-link").is_file()


def test_pio_upload_boots_qemu_and_returns_the_firmware_exit_code(fresh):
    core, build_dir = fresh
    for code, expect_success in [(0, True), (42, False)]:
        result = pio(["run", "-e", "mps2_an386_echo", "-t", "upload"], core, build_dir,
                     input_bytes=b"hi\x1bx" + bytes([code]))
        output = result.stdout.decode(errors="replace")
        assert "tinydrift hello board=mps2_an386" in output
        assert f"hibye code={code}\n" in output
        assert f"QEMU: the firmware exited with code {code}" in output
        assert (result.returncode == 0) == expect_success, output


def test_pio_upload_passes_upload_flags_to_qemu(fresh):
    """`upload_flags = -icount shift=0` (here through its environment variable) reaches QEMU:
    the board then boots on instruction time, identically every run."""
    core, build_dir = fresh
    outputs = []
    for _ in range(2):
        result = pio(["run", "-e", "mps2_an386_echo", "-t", "upload"], core, build_dir,
                     input_bytes=b"\x1bx\x00", extra_environment={"PLATFORMIO_UPLOAD_FLAGS": "-icount shift=0"})
        output = result.stdout.decode(errors="replace")
        assert result.returncode == 0, output
        assert "-kernel .pio/build/mps2_an386_echo/firmware.elf -icount shift=0" in output.replace(str(build_dir), ".pio/build")
        outputs.append([line for line in output.splitlines() if line.startswith("count ")])
    assert len(outputs[0]) == 3 and outputs[0] == outputs[1]
