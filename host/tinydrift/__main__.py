"""`python -m tinydrift`, and the installed `tinydrift` command (`run`).

`run` loads the commands itself, so that Ctrl-C while they load (the first half second:
numpy, click and every command's module) ends the run as Ctrl-C does later, with
"interrupted" and exit code 130, not a traceback. Once the command has ended, Ctrl-C is
ignored: its outputs are whole, and one landing in Python's own exit (which puts the default
handler back) killed the process by the signal, exit -2, after a command that had succeeded.
A Ctrl-C landing in a garbage collector's callback, where Python drops exceptions (printing
"Exception ignored"), is delivered again, so it still ends the command."""

import _thread
import signal
import sys
import time


def _interrupt_main_soon() -> None:
    time.sleep(0.005)
    _thread.interrupt_main()


def _deliver_dropped_interrupt(unraisable) -> None:
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        # From another thread, a moment later, so that it lands once this hook has returned
        # (raised in the hook, it would be dropped as well); in a callback again, it comes back.
        _thread.start_new_thread(_interrupt_main_soon, ())
        return
    sys.__unraisablehook__(unraisable)


def run() -> None:
    sys.unraisablehook = _deliver_dropped_interrupt
    try:
        from tinydrift.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    try:
        main(prog_name="tinydrift")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    run()
