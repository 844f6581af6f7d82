"""The same echo app on the POSIX host port (stdin/stdout): what runs in QEMU runs as a
host executable too, with the same protocol and exit codes. Also checks that the app and
both ports build warning-free with gcc and clang (host) and arm-none-eabi-gcc."""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest

from tinydrift import firmware
from tinydrift.firmware import REPO_ROOT

FIRMWARE = REPO_ROOT / "firmware"
APP = [FIRMWARE / "src" / "echo" / "td_echo_main.c"]
HOST_PORT = [FIRMWARE / "port" / "host" / "td_port_host.c", FIRMWARE / "port" / "host" / "td_host_main.c"]
INCLUDES = [FIRMWARE / "lib" / "tinydrift" / "src"]
ESC = b"\x1b"


@pytest.fixture(scope="module", params=["gcc", "clang"])
def host_app(request):
    if shutil.which(request.param) is None:
        pytest.skip(f"{request.param} not installed")
    return firmware.compile_host(APP + HOST_PORT, include_dirs=INCLUDES, shared=False, sanitize=True,
                     compiler=request.param)


def run(executable, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([executable], input=data, capture_output=True, timeout=30)


def test_host_app_echoes_random_bytes_and_exits_with_the_code(host_app):
    rng = random.Random(7)
    for code in [0, 9, 255]:
        payload = bytes(rng.getrandbits(8) for _ in range(50_000))
        result = run(host_app, payload.replace(ESC, ESC + ESC) + ESC + b"x" + bytes([code]))
        assert result.returncode == code, result.stderr
        head, _, rest = result.stdout.partition(b"\n")
        assert head == b"tinydrift hello board=host cycle_hz=1000000000"
        counts = rest.split(b"\n", 3)
        assert all(re.fullmatch(rb"count \d ms=\d+ cycles=\d+", line) for line in counts[:3])
        assert counts[3] == payload + f"bye code={code}\n".encode()


def test_host_spin_reports_elapsed_nanoseconds(host_app):
    result = run(host_app, ESC + b"s" + (2_000_000).to_bytes(4, "little") + ESC + b"x\x00")
    assert result.returncode == 0
    match = re.search(rb"spin iterations=2000000 cycles=(\d+)\n", result.stdout)
    assert match and int(match.group(1)) > 0


ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2",
             "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes"]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_app_and_mps2_port_compile_warning_free_for_the_m4(tmp_path):
    port = sorted((FIRMWARE / "port" / "mps2_an386").glob("*.c"))
    ring_user = tmp_path / "ring_driver.c"  # the boards' shared microphone ring, in use
    ring_user.write_text(RING_DRIVER)
    for source in APP + port + [ring_user]:
        result = subprocess.run(
            ["arm-none-eabi-gcc", *ARM_FLAGS, f"-I{INCLUDES[0]}", f"-I{FIRMWARE / 'port' / 'common'}",
             "-c", str(source),
             "-o", str(tmp_path / (source.stem + ".o"))],
            capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


RING_DRIVER = r"""
/* Replays push/pop operations from stdin against td_pcm_ring and prints what pops return. */
#include <stdio.h>
#include <stdlib.h>
#include "td_pcm_ring.h"

static td_pcm_ring ring;

int main(void)
{
    static int16_t buffer[3 * TD_PCM_RING_CAPACITY];
    unsigned char op[3];
    td_pcm_ring_reset(&ring);
    while (fread(op, 1, 3, stdin) == 3) {
        size_t count = (size_t)op[1] | ((size_t)op[2] << 8);
        if (op[0] == 'w') {
            if (fread(buffer, sizeof buffer[0], count, stdin) != count) return 2;
            td_pcm_ring_push(&ring, buffer, count);
        } else {
            size_t taken = td_pcm_ring_pop(&ring, buffer, count);
            fwrite(&taken, sizeof taken, 1, stdout);
            fwrite(buffer, sizeof buffer[0], taken, stdout);
        }
    }
    fwrite((const void *)&ring.dropped, sizeof ring.dropped, 1, stdout);
    return 0;
}
"""


def test_microphone_ring_keeps_order_and_counts_drops(tmp_path):
    """The board ports' PCM ring against a Python model: 4,000 random pushes and pops of
    up to 3 × its capacity, so it fills, drops, wraps its indices and drains many times."""
    import struct

    import numpy as np

    source = tmp_path / "ring_driver.c"
    source.write_text(RING_DRIVER)
    executable = firmware.compile_host([source], include_dirs=[FIRMWARE / "port" / "common"], shared=False,
                           sanitize=True, extra_flags=["-Wno-unused-result"])
    capacity = 8192
    rng = np.random.default_rng(3)
    script = bytearray()
    model: list[int] = []
    expected = bytearray()
    dropped = 0
    for _ in range(4000):
        count = int(rng.integers(0, 3 * capacity)) if rng.random() < 0.1 else int(rng.integers(0, 700))
        if rng.random() < 0.5:
            samples = rng.integers(-32768, 32768, size=count).astype("<i2")
            script += b"w" + struct.pack("<H", count) + samples.tobytes()
            room = capacity - len(model)
            model.extend(samples[:room].tolist())
            dropped += max(0, count - room)
        else:
            script += b"r" + struct.pack("<H", count)
            taken, model = model[:count], model[count:]
            expected += struct.pack("<Q", len(taken)) + np.array(taken, dtype="<i2").tobytes()
    expected += struct.pack("<I", dropped)
    result = subprocess.run([executable], input=bytes(script), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert dropped > 0
    assert result.stdout == bytes(expected)
