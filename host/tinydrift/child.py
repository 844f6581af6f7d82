"""Child processes (QEMU, PlatformIO) that end when tinydrift ends, however it ends.

A caught signal (Ctrl-C, SIGTERM, SIGHUP) unwinds the CLI so that each child is stopped by
the code that started it. SIGKILL cannot be caught: for that case Linux lets a child ask to
be killed when its parent dies (PR_SET_PDEATHSIG), which `tied_to_this_process()` arranges.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

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
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return {"preexec_fn": die_with_parent}


def exit_on_termination() -> None:
    """Make SIGTERM and SIGHUP unwind like Ctrl-C (SystemExit 128 + signal), so `finally`
    blocks and context managers stop the processes they started."""

    def unwind(signum, _frame):
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, unwind)
