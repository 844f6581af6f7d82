"""`tinydrift bench device`: instruction counts of the pipeline's stages on the emulated
Cortex-M4, with the model's optimized and reference kernels side by side.

Register with `main.add_command(bench)` (from tinydrift.device.cli_bench import bench);
`python -m tinydrift.device.cli_bench device` runs it on its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import TinydriftError


@click.group("bench")
def bench():
    """Benchmarks (figures to read, not pass/fail tests)."""


@bench.command("device")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("models/kws"),
              show_default=True, help="Model folder: model_int8.tflite and include/td_monitor_config_<name>.h.")
@click.option("--app-elf", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Report flash/RAM of this application image (default: the bench's pipeline image).")
@click.option("--parse-frames", type=click.IntRange(min=1000), default=200_000, show_default=True,
              help="Frames for the host capture-parser rate (tinydrift.device.protocol.bench_parse).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def device(model_dir: Path, app_elf: Path | None, parse_frames: int, as_json: bool):
    """Instructions per stage on QEMU's mps2-an386 (Cortex-M4F, -icount shift=0).

    Runs the front end on a fixed 1 s clip, the model with the optimized kernels and with
    the reference kernels, and the drift monitor (summarize + update), then checks the run
    (features against the host build of the front end, outputs against TFLite Micro).
    Exits with 1 when a check fails.

    \b
    Examples:
      tinydrift bench device
      tinydrift bench device --json
      tinydrift bench device --model-dir models/kws --app-elf firmware/.pio/build/mps2_an386/firmware.elf
    """
    from .bench import format_report, run_bench

    try:
        figures = run_bench(model_dir, app_elf=app_elf, parse_frames=parse_frames)
    except TinydriftError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(figures, sort_keys=True))
    else:
        click.echo(format_report(figures))
    failed = [name for name, ok in figures["checks"].items() if not ok]
    if failed:
        click.secho(f"error: the bench run failed its checks: {', '.join(failed)}", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(bench())
