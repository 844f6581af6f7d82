"""Child processes (QEMU, PlatformIO) that end when tinydrift ends, however it ends.

A caught signal (Ctrl-C, SIGTERM, SIGHUP) unwinds the CLI so that each child is stopped by
the code that started it. SIGKILL cannot be caught: for that case Linux lets a child ask to
be killed when its parent dies (PR_SET_PDEATHSIG), which `tied_to_this_process()` arranges.
A child's own children (QEMU under `pio run -t upload`) are not covered by that: a
`group_watchdog` kills the child's whole process group when tinydrift dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from typing import Iterator

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def tied_to_this_process() -> dict:
    """Popen keyword arguments that kill the child when this process dies, even by SIGKILL.

    The kernel ties the child to the thread that started it, so this is only offered on the
    main thread (a worker thread's end would kill a child that should live on)."""
    if _LIBC is None or threading.current_thread() is not threading.main_thread():
        return {}
    parent = os.getpid()

    def die_with_parent() -> None:  # runs in the child, between fork and exec
        end_with_parent(parent)

    return {"preexec_fn": die_with_parent}


def end_with_parent(parent: int) -> None:
    """In a child (a forked worker too): be killed when `parent`'s thread that started it dies,
    even by SIGKILL, and leave now if it already has. Linux only; elsewhere nothing."""
    if _LIBC is None:
        return
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def exit_on_termination() -> None:
    """Make SIGTERM and SIGHUP unwind like Ctrl-C (SystemExit 128 + signal), so `finally`
    blocks and context managers stop the processes they started."""

    def unwind(signum, _frame):
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, unwind)


@contextlib.contextmanager
def group_watchdog(process_group: int) -> Iterator[None]:
    """While inside, a small process waits for tinydrift to die (the kernel tells it, by
    PR_SET_PDEATHSIG, however tinydrift dies) and then kills `process_group` (a child started
    with start_new_session=True, and everything it started). Leaving the block stops it."""
    options = tied_to_this_process()
    if not options:  # not Linux, or not the main thread: the caller's own cleanup must do
        yield
        return

    def die_with_parent_by_sigterm() -> None:
        options["preexec_fn"]()
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # SIGTERM, so the trap below runs

    program = ("import os, signal\n"
               "def stop(*_):\n"
               f"    try: os.killpg({int(process_group)}, signal.SIGKILL)\n"
               "    except OSError: pass\n"
               "    os._exit(0)\n"
               "signal.signal(signal.SIGTERM, stop)\n"
               "while True: signal.pause()\n")
    watchdog = subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=die_with_parent_by_sigterm)
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()
