"""What every command module shares: default folders, progress bars, JSON output.

Library code never imports the CLI; commands call the library and print.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click

DEFAULT_DATA = Path("build/data/kws")
DEFAULT_MODEL = Path("models/kws")


@contextlib.contextmanager
def progress_bars():
    """Yield a factory `(description, total) -> advance(n)`; bars go to stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    ) as progress:

        def factory(description: str, total: int):
            task = progress.add_task(description, total=total)
            return lambda n=1: progress.advance(task, n)

        yield factory


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=None, sort_keys=True))
