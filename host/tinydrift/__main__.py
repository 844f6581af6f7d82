"""`python -m tinydrift`, and the installed `tinydrift` command (`run`).

`run` loads the commands itself, so that Ctrl-C while they load (the first half second:
numpy, click and every command's module) ends the run as Ctrl-C does later, with
"interrupted" and exit code 130, not a traceback. Once the command has ended, Ctrl-C is
ignored: its outputs are whole, and one landing in Python's own exit (which puts the default
handler back) killed the process by the signal, exit -2, after a command that had succeeded."""

import signal
import sys


def run() -> None:
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
