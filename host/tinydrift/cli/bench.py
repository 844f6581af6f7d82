"""`tinydrift bench device`: instruction counts of the pipeline's stages on the emulated
Cortex-M4, with the model's optimized and reference kernels side by side.
`tinydrift bench frontend-stream`: the streaming front end's instructions per frame there.
`tinydrift bench drift`: detection and false alarms of the drift monitor against host-side
detectors on drift scenarios and unseen populations.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tinydrift.cli.common import DEFAULT_MODEL
from tinydrift.cli.params import FIRMWARE_IMAGE, MODEL_FOLDER, OUTPUT_FOLDER


@click.group("bench")
def bench():
    """Benchmarks (figures to read, not pass/fail tests)."""


@bench.command("device")
@click.option("--model-dir", type=MODEL_FOLDER, default=DEFAULT_MODEL,
              show_default=True, help="Model folder: model_int8.tflite and include/td_monitor_config_<name>.h.")
@click.option("--app-elf", type=FIRMWARE_IMAGE, default=None,
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


@bench.command("frontend-stream")
@click.option("--step-ms", type=click.IntRange(1, 30), default=10, show_default=True,
              help="Frame step the front end is built for (10: microWakeWord's models; 20: the kws models').")
@click.option("--seconds", type=click.IntRange(1, 30), default=2, show_default=True,
              help="Length of the fixed stream fed hop by hop.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the lines.")
def frontend_stream(step_ms: int, seconds: int, as_json: bool):
    """Instructions per frame of the streaming front end on QEMU's mps2-an386.

    Builds the front end for --step-ms, resets it once and feeds a fixed stream hop by
    hop, as a wake-word device runs it; checks every frame against the host front end
    (exits with 1 when a check fails) and reports the first frame (a whole window), the
    mean and the largest of the later ones, and the real-time load they make.

    \b
    Examples:
      tinydrift bench frontend-stream
      tinydrift bench frontend-stream --step-ms 20 --json
    """
    from tinydrift.target.bench import run_frontend_stream_bench

    figures = run_frontend_stream_bench(step_ms, seconds=seconds)
    if as_json:
        click.echo(json.dumps(figures, sort_keys=True))
    else:
        per_second = figures["instructions_per_frame"] * 1000 / step_ms
        click.echo(f"tinydrift bench frontend-stream (QEMU mps2-an386, Cortex-M4F, -icount shift=0: instructions)\n"
                   f"  step {step_ms} ms, {figures['frames']} frames from one reset\n"
                   f"  first frame (a whole window)   {figures['first_frame_instructions']:>10,}\n"
                   f"  later frames, mean             {figures['instructions_per_frame']:>10,.0f}"
                   f"   {per_second / 1e6:.2f} M instructions per second of audio\n"
                   f"  later frames, largest          {figures['max_frame_instructions']:>10,}\n"
                   f"  stack                          {figures['stack_used_bytes']:>10,} bytes")
    failed = [name for name, ok in figures["checks"].items() if not ok]
    if failed:
        click.secho(f"error: the bench run failed its checks: {', '.join(failed)}", fg="red", err=True)
        sys.exit(1)


@bench.command("drift")
@click.option("--model-dir", type=MODEL_FOLDER, default=DEFAULT_MODEL,
              show_default=True, help="An exported model folder: its int8 model and its monitor config.")
@click.option("--quick", is_flag=True, help="Smaller pools and fewer streams: a few minutes on 2 cores.")
@click.option("--out", "out_dir", type=OUTPUT_FOLDER, default=Path("build/bench/drift"),
              show_default=True, help="Folder for drift_bench.json, drift_bench.md and the cached pools.")
@click.option("--no-baselines", is_flag=True, help="Only the shipped monitor (skip the comparison).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def drift(model_dir: Path, quick: bool, out_dir: Path, no_baselines: bool, as_json: bool):
    """The monitor on drift scenarios and on populations that must not alarm.

    Synthesizes fresh populations (the deployment one, harmless ones the calibration never
    saw, harmful ones), transforms their audio (gain, band limits, an 8 kHz path, noise,
    reverberation, sensor faults), changes class mixes and labels, runs every clip through
    the int8 model once (cached in OUT/pools), then the monitor's twin, bit-exact with the
    firmware, over streams of deployment inferences followed by drifted ones. Reports per
    scenario the accuracy the drift costs, detection rate, median/p90 delay, false alarms
    before the change, whether the first alarm has the right type, the label-free accuracy
    estimate against the truth; the empirical ARL0 on every unseen population; and, at one
    lower ARL0, the same streams through host-side detectors (River's ADWIN, Page-Hinkley
    and KSWIN on the entropy, KS on confidence windows, MEWMA and MMD on the input summary).
    Figures to read: the exit code is 0 unless the run itself fails.

    A camera model (an image input, e.g. models/plant) gets the camera scenarios instead:
    fresh procedural leaves, one-attribute leaf populations as controls, a smudged lens,
    a coarser camera, colour casts, exposure, sensor noise, JPEG, dead and stuck cameras,
    and a new diagnostic sign that relabels some healthy leaves (concept drift).

    \b
    Examples:
      tinydrift bench drift --quick
      tinydrift bench drift --model-dir models/plant --quick
      tinydrift bench drift --json > drift.json
    """
    from tinydrift.pipeline.drift_bench import bench_settings, markdown, run_drift_bench, write_outputs

    log = (lambda m: None) if as_json else (lambda m: click.echo(m, err=True))
    result = run_drift_bench(model_dir, bench_settings(model_dir, quick), cache=out_dir / "pools", log=log,
                             baselines=not no_baselines)
    paths = write_outputs(result, out_dir)
    if as_json:
        from tinydrift.monitor.config import jsonable

        click.echo(json.dumps(jsonable(result.to_json())))
    else:
        click.echo(markdown(result))
        click.echo(f"wrote {', '.join(map(str, paths))} in {result.seconds:.0f} s", err=True)
