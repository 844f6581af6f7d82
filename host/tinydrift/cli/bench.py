"""`tinydrift bench device`: instruction counts of the pipeline's stages on the emulated
Cortex-M4, with the model's optimized and reference kernels side by side.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click



@click.group("bench")
def bench():
    """Benchmarks (figures to read, not pass/fail tests)."""


@bench.command("device")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("models/kws"),
              show_default=True, help="Model folder: model_int8.tflite and include/td_monitor_config_<name>.h.")
@click.option("--app-elf", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Report flash/RAM of this application image (default: the bench's pipeline image).")
@click.option("--parse-frames", type=click.IntRange(min=1000), default=200_000, show_default=True,
              help="Frames for the host capture-parser rate (tinydrift.link.protocol.bench_parse).")
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
    from tinydrift.target.bench import format_report, run_bench

    figures = run_bench(model_dir, app_elf=app_elf, parse_frames=parse_frames)
    if as_json:
        click.echo(json.dumps(figures, sort_keys=True))
    else:
        click.echo(format_report(figures))
    failed = [name for name, ok in figures["checks"].items() if not ok]
    if failed:
        click.secho(f"error: the bench run failed its checks: {', '.join(failed)}", fg="red", err=True)
        sys.exit(1)
