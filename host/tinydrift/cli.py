"""The `tinydrift` command: one sub-command per step of the pipeline (DESIGN §1)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from .errors import TinydriftError

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


class TinydriftGroup(click.Group):
    """Turns TinydriftError into one line on stderr and exit code 1, without a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TinydriftError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=TinydriftGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tinydrift")
def main():
    """tinydrift: make a deployed TinyML model notice drift by itself.

    \b
    The pipeline, one command per step:
      tinydrift data kws        synthesize the keyword-spotting set (espeak-ng)
      tinydrift train           train a DS-CNN on its features
      tinydrift quantize        convert to full-int8 TFLite for TFLite Micro
      tinydrift eval            accuracy on any clip set, on TFLite Micro or LiteRT
      tinydrift export          C headers: model, reference statistics, thresholds
    """


@main.group()
def data():
    """Build data sets (run `tinydrift data kws --help`)."""


@data.command("kws")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="Folder for the splits (train/val/ref/test/accent .npz) and manifest.json.")
@click.option("--seed", type=int, default=0, show_default=True, help="Everything is deterministic from it.")
@click.option("--clips-per-class", type=int, default=None,
              help="Training clips per class (held-out splits scale with it). Default: 1000.")
@click.option("--workers", type=int, default=None, help="Synthesis processes (default: all cores).")
def data_kws(out: Path, seed: int, clips_per_class: int | None, workers: int | None):
    """Synthesize the 12-class keyword-spotting set with espeak-ng.

    English voices form the training domain (train, val, ref, test splits hear disjoint voice
    variants); the `accent` split has the test variants speak through other languages'
    voices: the accent-shift drift scenario. Cached by configuration: a second run is instant.

    \b
    Example:
      tinydrift data kws --out build/data/kws
    """
    from .data.synth import KwsConfig, build_kws

    config = KwsConfig(seed=seed)
    if clips_per_class is not None:
        if clips_per_class < 1:
            raise TinydriftError(f"--clips-per-class must be at least 1, got {clips_per_class}")
        scale = clips_per_class / config.clips_per_class["train"]
        config = KwsConfig(seed=seed, clips_per_class={
            k: max(1, round(v * scale)) for k, v in config.clips_per_class.items()})
    with progress_bars() as bars:
        paths = build_kws(out, config, workers=workers, progress_factory=bars)
    for split, path in paths.items():
        click.echo(f"{split:>7}: {path}")


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=None, sort_keys=True))


if __name__ == "__main__":
    main()
