"""`python -m tinydrift`, and the installed `tinydrift` command (`run`).

`run` loads the commands itself, so that Ctrl-C while they load (the first half second:
numpy, click and every command's module) ends the run as Ctrl-C does later, with
"interrupted" and exit code 130, not a traceback."""

import sys


def run() -> None:
    try:
        from tinydrift.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    main(prog_name="tinydrift")


if __name__ == "__main__":
    run()
