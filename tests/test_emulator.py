"""The emulated board end to end: the echo app (firmware/src/echo/, env mps2_an386_echo) built by PlatformIO,
booted in QEMU's mps2-an386, driven over the TCP serial link.

The app prints a hello line and three counter lines, echoes what it receives, and takes
commands after ESC: ESC ESC (a literal ESC), ESC c (counter line), ESC s <u32> (spin loop),
ESC u (undefined instruction), ESC w <u32> (wait for input), ESC x <code> (exit)."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from tinydrift.firmware import REPO_ROOT
from tinydrift.target import emulator, platformio

pytestmark = pytest.mark.skipif(
    shutil.which(emulator.QEMU) is None or platformio.pio_executable() is None,
    reason="needs qemu-system-arm and PlatformIO (scripts/setup.sh installs both)",
)

ESC = b"\x1b"
HELLO = "tinydrift hello board=mps2_an386 cycle_hz=25000000"
BOOT_LINES = 4  # hello + three counter lines


def exit_command(code: int) -> bytes:
    return ESC + b"x" + bytes([code])


def spin_command(iterations: int) -> bytes:
    return ESC + b"s" + iterations.to_bytes(4, "little")


def escaped(data: bytes) -> bytes:
    return data.replace(ESC, ESC + ESC)


@pytest.fixture(scope="module")
def elf():
    return emulator.build_firmware(emulator.ECHO_ENV)


@pytest.mark.parametrize("code", [0, 1, 42, 200, 255])
def test_boots_prints_hello_and_counters_and_exits_with_the_chosen_code(elf, code):
    result = emulator.run(elf, send=exit_command(code), timeout=20)
    assert result.exit_code == code
    lines = result.lines
    assert lines[0] == HELLO
    counts = [re.fullmatch(r"count (\d+) ms=(\d+) cycles=(\d+)", line) for line in lines[1:4]]
    assert all(counts), lines
    assert [int(m.group(1)) for m in counts] == [1, 2, 3]
    cycles = [int(m.group(3)) for m in counts]
    assert cycles == sorted(cycles) and cycles[0] < cycles[-1]
    assert lines[4:] == [f"bye code={code}"]


def test_echo_through_pyserial_socket_loses_no_byte(elf):
    """60,000 random bytes (every value, ESC escaped) in three sessions, two of them with
    -icount: everything comes back, in order, while both directions push back."""
    rng = random.Random(20261125)
    for session, icount_shift in enumerate([None, 0, None]):
        payload = bytes(rng.getrandbits(8) for _ in range(20_000))
        with emulator.start(elf, icount_shift=icount_shift) as board:
            link = board.open_serial(timeout=10)
            boot = [link.readline() for _ in range(BOOT_LINES)]
            assert boot[0].decode().rstrip("\n") == HELLO, boot

            echoed = bytearray()

            def collect() -> None:
                while len(echoed) < len(payload):
                    data = link.read(min(4096, len(payload) - len(echoed)))
                    if not data:
                        return
                    echoed.extend(data)

            reader = threading.Thread(target=collect)
            reader.start()
            wire = escaped(payload)
            for offset in range(0, len(wire), 1000):
                link.write(wire[offset:offset + 1000])
            reader.join(timeout=60)
            assert bytes(echoed) == payload, f"session {session}: {len(echoed)} bytes back"

            link.write(exit_command(session + 10))
            assert link.readline() == f"bye code={session + 10}\n".encode()
            assert board.wait(timeout=10) == session + 10
            link.close()


def test_commands_after_echoed_bytes_keep_their_order(elf):
    result = emulator.run(elf, send=b"abc" + ESC + b"c" + escaped(b"d\x1be") + ESC + b"?"
                          + exit_command(3), timeout=20)
    text = result.output.decode()
    tail = text.split("\n", BOOT_LINES)[BOOT_LINES]
    assert re.fullmatch(r"abccount 4 ms=\d+ cycles=\d+\nd\x1beunknown command 0x3f\nbye code=3\n",
                        tail), tail
    assert result.exit_code == 3


def wait_command(ms: int) -> bytes:
    return ESC + b"w" + ms.to_bytes(4, "little")


WAIT = re.compile(r"wait ms=(\d+) received=(\d+) cycles=(\d+)\n")
CYCLES_PER_MS = 25_000


def test_a_wait_for_input_ends_at_its_timeout_or_at_the_first_byte(elf):
    """td_port_read sleeps while it waits (see the idle test below): it must still return at
    its timeout, not at the next SysTick (0.67 s), and at once when a byte comes."""
    with emulator.start(elf) as board:
        link = board.open_serial(timeout=10)
        for _ in range(BOOT_LINES):
            link.readline()
        for ms in (5, 40):
            taken = []
            for _ in range(3):  # the fastest of three: a host too busy to run QEMU for a while is no fault
                link.write(wait_command(ms))
                found = WAIT.fullmatch(link.readline().decode())
                assert found and int(found.group(2)) == 0, found
                taken.append(int(found.group(3)))
            assert min(taken) >= ms * CYCLES_PER_MS and min(taken) < (ms + 100) * CYCLES_PER_MS, taken
        link.write(wait_command(20_000))
        time.sleep(0.3)
        link.write(b"z")
        found = WAIT.fullmatch(link.readline().decode())
        assert found and int(found.group(2)) == 1, found
        assert 250 * CYCLES_PER_MS <= int(found.group(3)) < 10_000 * CYCLES_PER_MS, found.group(0)
        link.write(exit_command(0))
        assert link.readline() == b"bye code=0\n"
        assert board.wait(timeout=10) == 0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_board_waiting_for_its_link_leaves_the_host_cpu_idle(elf):
    """A board with nothing to do but wait for its serial link (no microphone) once polled
    the UART: QEMU kept a host core 100 % busy for as long as it ran (`emulate --serve`
    without --audio, and every such test). The port now sleeps in wfi until a byte or its
    timeout, and QEMU idles: 0.01 of a core measured, against 1.00 before."""
    with emulator.start(elf) as board:
        link = board.open_serial(timeout=10)
        for _ in range(BOOT_LINES):
            link.readline()
        for client in ("connected", "gone"):
            if client == "gone":
                link.close()
            time.sleep(0.3)
            cpu, wall = _cpu_seconds(board.process.pid), time.monotonic()
            time.sleep(2.0)
            share = (_cpu_seconds(board.process.pid) - cpu) / (time.monotonic() - wall)
            assert share < 0.25, f"QEMU used {share:.2f} of a core while the board waited, its client {client}"


def test_a_cpu_fault_is_reported_and_ends_the_run(elf):
    result = emulator.run(elf, send=b"x" + ESC + b"u", timeout=20)
    assert result.exit_code == 127  # TD_PORT_EXIT_FAULT
    # HardFault (exception 3), escalated from an undefined instruction (CFSR.UNDEFINSTR)
    assert result.output.endswith(b"x\r\ntd_port: fault, exception 03 cfsr 00010000\r\n")


SPIN = re.compile(r"spin iterations=(\d+) cycles=(\d+)")


def spin_cycles(elf, iterations: list[int], icount_shift: int) -> list[int]:
    command = b"".join(spin_command(n) for n in iterations) + exit_command(0)
    result = emulator.run(elf, send=command, icount_shift=icount_shift, timeout=30)
    assert result.exit_code == 0
    found = [SPIN.fullmatch(line) for line in result.lines if line.startswith("spin")]
    assert [int(m.group(1)) for m in found] == iterations
    return [int(m.group(2)) for m in found]


def test_icount_cycles_count_instructions_exactly(elf):
    """Under -icount shift=0 one SysTick cycle is 40 instructions: a loop of n iterations
    (SUBS + BNE, 2n instructions) plus a fixed call overhead reads back as 2n within one
    cycle, for loop sizes over three decades."""
    iterations = [1_000, 10_000, 123_457, 1_000_000, 4_000_000]
    cycles = spin_cycles(elf, iterations, icount_shift=0)
    for n, c in zip(iterations, cycles):
        instructions = emulator.instructions_from_cycles(c, icount_shift=0)
        assert 2 * n - 40 <= instructions <= 2 * n + 120, (n, c, instructions)


def test_icount_runs_are_repeatable(elf):
    """Boot output does not depend on the host: under -icount it is the same to the cycle
    on every run. What follows input depends on when the input arrived (the firmware polls
    meanwhile), so a timed loop starts at any phase of a 40-instruction cycle: its count
    may differ by one cycle, no more."""
    command = spin_command(54_321) + exit_command(5)
    runs = [emulator.run(elf, send=command, icount_shift=0) for _ in range(3)]
    assert all(run.exit_code == 5 for run in runs)
    assert runs[0].lines[:BOOT_LINES] == runs[1].lines[:BOOT_LINES] == runs[2].lines[:BOOT_LINES]
    spins = [int(SPIN.fullmatch(run.lines[BOOT_LINES]).group(2)) for run in runs]
    assert max(spins) - min(spins) <= 1, spins


def test_cycle_counter_survives_systick_wraps(elf):
    """SysTick is 24 bits: it wraps every 2**24 cycles and the port extends it in its
    interrupt. At shift=7 (128 ns per instruction, 3.2 cycles each) a 4M-iteration loop
    spans about 1.5 wraps: the count must still match the instructions run."""
    iterations = [4_000_000, 6_000_000]
    cycles = spin_cycles(elf, iterations, icount_shift=7)
    for n, c in zip(iterations, cycles):
        assert c > 1 << 24
        instructions = emulator.instructions_from_cycles(c, icount_shift=7)
        assert 2 * n - 2 <= instructions <= 2 * n + 120, (n, c, instructions)


def test_missing_image_is_a_clear_error(tmp_path):
    from tinydrift.errors import TinydriftError

    with pytest.raises(TinydriftError, match="not found"):
        emulator.start(tmp_path / "absent.elf")


def test_elf_symbols_give_each_name_its_size(tmp_path):
    """One reader of an image's symbols serves the bench's sizes and emulate's check of the
    app's kind: sized symbols with their bytes, an undefined one without a size."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed (scripts/setup.sh)")
    source = tmp_path / "t.c"
    source.write_text("int table[7] = {1};\nextern int td_port_mic_read(void);\nint f(void) { return td_port_mic_read(); }\n")
    subprocess.run(["arm-none-eabi-gcc", "-c", "-O1", str(source), "-o", str(tmp_path / "t.o")], check=True)
    symbols = emulator.elf_symbols(tmp_path / "t.o")
    assert symbols["table"] == 28 and symbols["td_port_mic_read"] is None and symbols["f"] > 0
    assert emulator.hears_microphone(tmp_path / "t.o") is True
    assert emulator.hears_microphone(source) is None  # no image: its symbols cannot be read


EMULATE = "from tinydrift.cli.device import emulate; emulate()"


def test_emulate_command_bridges_the_console_and_returns_the_exit_code(elf):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", EMULATE, "--elf", str(elf), "--icount"],
                            input=b"ping" + ESC + b"c" + exit_command(42), capture_output=True,
                            timeout=30)
    assert result.returncode == 42, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == HELLO
    assert re.fullmatch(r"pingcount 4 ms=\d+ cycles=\d+", lines[4])
    assert lines[5] == "bye code=42"
    assert b"exited with code 42" in result.stderr

    stuck = subprocess.run([sys.executable, "-c", EMULATE, "--elf", str(elf), "--timeout", "0.5"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert stuck.returncode == 124  # as timeout(1): stopped as asked, not an error of its own
    assert stuck.stderr.decode().splitlines()[-1] == ("tinydrift: stopped QEMU at --timeout 0.5 s; the firmware "
                                                      "was still running")
    assert stuck.stdout.startswith(HELLO.encode())


NEWLIB_PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
#include "td_port.h"

int td_app_main(void)
{
    td_port_init();
    char line[80];
    void *memory = malloc(16);
    snprintf(line, sizeof line, "snprintf %d %s, malloc %s\n", 42, "ok", memory ? "gave memory" : "refused");
    td_port_print(line);
    printf("printf %u\n", 7u);
    fflush(stdout);
    return memory == NULL ? 0 : 1;
}
"""


def test_newlib_nano_stdio_reaches_the_uart_and_the_heap_stays_closed(tmp_path):
    """The port's newlib system calls: portable code may use snprintf/printf (they reach the
    console), and malloc fails instead of handing out memory (no heap by design)."""
    import subprocess

    firmware = platformio.FIRMWARE_DIR
    port = firmware / "port" / "mps2_an386"
    probe = tmp_path / "probe.c"
    probe.write_text(NEWLIB_PROBE)
    elf = tmp_path / "probe.elf"
    subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                    "-mfpu=fpv4-sp-d16", "-O2", "-Wall", "-Wextra", "-Werror",
                    f"-I{firmware / 'lib' / 'tinydrift' / 'src'}", str(probe),
                    *map(str, sorted(port.glob("*.c"))), "-nostartfiles", "--specs=nano.specs",
                    "-Wl,--gc-sections", "-T", str(port / "mps2_an386.ld"), "-o", str(elf)],
                   check=True, capture_output=True)
    result = emulator.run(elf, timeout=20)
    assert result.output == b"snprintf 42 ok, malloc refused\nprintf 7\n"
    assert result.exit_code == 0


def test_a_firmware_that_stops_reading_is_stopped_at_the_timeout(elf):
    """A busy firmware stops reading, so the host's writes block: the timeout must still
    hold, and QEMU must be gone afterwards."""
    from tinydrift.errors import TinydriftError

    import time

    started = time.monotonic()
    with pytest.raises(TinydriftError, match="did not exit within"):
        emulator.run(elf, send=spin_command(0xFFFFFFFF) + b"a" * 1_000_000, timeout=1.0)
    assert time.monotonic() - started < 5.0


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped (a container's init may not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL],
                         ids=lambda s: signal.Signals(s).name)
def test_emulate_takes_qemu_with_it_however_it_is_stopped(elf, signum):
    """`tinydrift emulate --serve` stopped by a signal (a service manager's SIGTERM, a closed
    terminal's SIGHUP, Ctrl-C, even SIGKILL) must not leave QEMU holding the port and a core."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "host"))
    # As from a terminal: a test run started in the background of a non-interactive shell
    # has SIGINT ignored, which its children would inherit (Ctrl-C then means nothing).
    proc = subprocess.Popen([sys.executable, "-m", "tinydrift", "emulate", "--serve", "--elf", str(elf)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url = proc.stdout.readline().strip()  # printed once QEMU listens
        assert url.startswith("socket://127.0.0.1:"), proc.stderr.read()
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as children:
            qemu = [int(pid) for pid in children.read().split()]
        assert len(qemu) == 1 and _alive(qemu[0])
        proc.send_signal(signum)
        proc.wait(timeout=20)
        deadline = time.monotonic() + 10
        while _alive(qemu[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(qemu[0]), f"QEMU {qemu[0]} outlived `tinydrift emulate` stopped by {signum}"
        if signum != signal.SIGKILL:
            assert "Traceback" not in proc.stderr.read()
        if signum == signal.SIGINT:  # Ctrl-C: the shell's code, as every command gives (once click's 1)
            assert proc.returncode == 130
    finally:
        if proc.poll() is None:
            proc.kill()
