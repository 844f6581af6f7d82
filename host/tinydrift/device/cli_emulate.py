"""`tinydrift emulate`: boot the firmware in QEMU with its console on this terminal."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import termios
import threading
import tty
from pathlib import Path

import click

from . import emulator


@contextlib.contextmanager
def _keys_go_straight_through(stream):
    """On a terminal, send each key as typed (ESC commands need no Enter) without local
    echo (the firmware echoes); Ctrl-C still interrupts. Restored on the way out."""
    if not stream.isatty():
        yield
        return
    descriptor = stream.fileno()
    saved = termios.tcgetattr(descriptor)
    try:
        tty.setcbreak(descriptor)
        yield
    finally:
        termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)


def _pump(read, write) -> None:
    with contextlib.suppress(OSError):
        for data in iter(read, b""):
            write(data)


@click.command("emulate")
@click.option("--elf", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Firmware image to boot (default: build firmware/ with `pio run -e mps2_an386`).")
@click.option("--icount", is_flag=True,
              help="Count instructions (-icount shift=0): repeatable timing, 1 cycle = 40 instructions.")
@click.option("--timeout", type=float, default=None, metavar="S",
              help="Stop QEMU after S seconds (default: run until the firmware exits).")
@click.option("--audio", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Raw 16 kHz int16 PCM file the board's microphone hears (the app exits at its end).")
@click.option("--serve", is_flag=True,
              help="Do not attach this terminal: print the serial URL and wait, for `tinydrift capture --port URL`.")
def emulate(elf: Path | None, icount: bool, timeout: float | None, audio: Path | None, serve: bool) -> None:
    """Boot the firmware on the emulated board (QEMU mps2-an386, Cortex-M4F).

    The board waits for its serial client before it runs, so no byte is lost. By default
    the client is this terminal (what you type goes to the board, what it prints comes
    back); with --serve it is whatever connects to the printed URL. The command exits
    with the firmware's exit code.

    \b
    Examples:
      tinydrift emulate --serve --audio clips.pcm   # then, elsewhere:
      tinydrift capture --port socket://127.0.0.1:PORT --db log.sqlite --model-dir models/kws
    """
    import tempfile

    with tempfile.TemporaryDirectory() as links:
        args = [emulator.audio_file_argument(audio, Path(links))] if audio else []
        board = emulator.start(elf, icount_shift=0 if icount else None, semihosting_args=args)
        with board:
            click.echo(f"tinydrift: booting {board.elf} on {emulator.MACHINE}"
                       f"{' with -icount shift=0' if icount else ''} (Ctrl-C stops)", err=True)
            if serve:
                click.echo(board.url)
                try:
                    code = board.wait(timeout)
                except KeyboardInterrupt:
                    board.close()
                    raise click.Abort() from None
                click.echo(f"tinydrift: the firmware exited with code {code}", err=True)
                click.get_current_context().exit(code)
            _attach_terminal(board, timeout)


def _attach_terminal(board, timeout: float | None) -> None:
    """This terminal as the board's console until the firmware exits; exit with its code."""
    link = socket.create_connection(("127.0.0.1", board.port))
    stdout = sys.stdout.buffer

    def show(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

    output = threading.Thread(target=_pump, args=(lambda: link.recv(65536), show), daemon=True)
    output.start()
    stdin_descriptor = sys.stdin.fileno()
    threading.Thread(target=_pump, args=(lambda: os.read(stdin_descriptor, 4096), link.sendall),
                     daemon=True).start()
    try:
        with _keys_go_straight_through(sys.stdin):
            code = board.wait(timeout)
    except KeyboardInterrupt:
        board.close()
        raise click.Abort() from None
    output.join(timeout=2.0)
    link.close()
    click.echo(f"tinydrift: the firmware exited with code {code}", err=True)
    click.get_current_context().exit(code)
