"""What every command module shares: default folders, progress bars, JSON output.

Library code never imports the CLI; commands call the library and print.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from pathlib import Path

import click

DEFAULT_DATA = Path("build/data/kws")
DEFAULT_MODEL = Path("models/kws")
DEFAULT_PLANT_DATA = Path("build/data/plant")


def refuse_output_inside(out: Path, folder: Path, what: str) -> None:
    """A command's output may not be `folder` (an input it reads, e.g. the model folder), lie
    inside it, or hold it: its results and caches would land among the input's files, and a
    clean of the output (demo --clean) once deleted the shipped model folder it was given."""
    from tinydrift.errors import TinydriftError

    out, folder = Path(out).resolve(), Path(folder).resolve()
    if out == folder or folder in out.parents or out in folder.parents:
        raise TinydriftError(f"--out {out} overlaps {what} {folder}, which the command reads: give a folder of its "
                             "own (the default is under build/)")


# Off a terminal, a bar still running says how far it got this often (a replay into QEMU
# runs for minutes, and its log would otherwise stay silent until the end).
PROGRESS_LINE_S = 30.0


@contextlib.contextmanager
def progress_bars(line_every_s: float = PROGRESS_LINE_S):
    """Yield a factory `(description, total) -> advance(n)`; bars go to stderr. The display
    starts with the first bar: one stopped before any (a command refusing its input) printed
    an empty line above the error, off a terminal. Off a terminal each bar is a line when it
    completes, and one every `line_every_s` while it runs: rich draws its bars there only
    when they stop, after every line the command wrote meanwhile (trial 13's log of
    `wakeword demo`)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not Console(stderr=True).is_terminal:
        def lines(description: str, total: int):
            done, said_at = 0, time.monotonic()

            def advance(n=1):
                nonlocal done, said_at
                done += n
                if done >= total > done - n or (done < total and time.monotonic() - said_at >= line_every_s):
                    click.echo(f"{description:<24} {done}/{total}", err=True)
                    said_at = time.monotonic()
            return advance

        yield lines
        return
    progress = Progress(
        TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )

    def factory(description: str, total: int):
        if not progress.live.is_started:
            progress.start()
        task = progress.add_task(description, total=total)
        return lambda n=1: progress.advance(task, n)

    try:
        yield factory
    finally:
        if progress.live.is_started:
            progress.stop()


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=None, sort_keys=True))


def firmware_exit(code: int) -> str:
    """The emulated firmware's exit in words. A negative code is QEMU's own death by a signal:
    SIGABRT is how QEMU stops when the emulated Cortex-M locks up (a fault while handling a
    fault: a stack overflow, a bad pointer or vector table)."""
    if code >= 0:
        return f"the firmware exited with code {code}"
    if code == -signal.SIGABRT:
        return (f"the emulated CPU locked up and QEMU aborted (code {code}): the firmware hit a fault it could not "
                "handle (stack overflow, bad pointer); its last output above shows how far it got")
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"QEMU was stopped by {name} (code {code}) before the firmware exited"
