"""`tinydrift bench device`: instruction counts of the pipeline's stages on the emulated
Cortex-M4, with the model's optimized and reference kernels side by side.
`tinydrift bench frontend-stream`: the streaming front end's instructions per frame there.
`tinydrift bench drift`: detection and false alarms of the drift monitor against host-side
detectors on drift scenarios and unseen populations.
`tinydrift bench wakeword`: microWakeWord's models' false rejects and false accepts in
domain and under drift, and how soon the monitor sees the drift.
`tinydrift bench fleet`: simulated devices through the broker into PostgreSQL: loss, copies,
latency, throughput and CPU, also across a broker restart and a killed collector.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from tinydrift.cli.common import DEFAULT_MODEL, refuse_output_inside
from tinydrift.cli.params import FIRMWARE_IMAGE, MODEL_FOLDER, OUTPUT_FOLDER, input_file, input_folder


@click.group("bench")
def bench():
    """Benchmarks (figures to read, not pass/fail tests)."""


def _show(result, paths: list, markdown, as_json: bool) -> None:
    """A bench's result on stdout (one JSON object, or its Markdown) and where its files went."""
    if as_json:
        from tinydrift.monitor.config import jsonable

        click.echo(json.dumps(jsonable(result.to_json())))
    else:
        click.echo(markdown(result))
        click.echo(f"wrote {', '.join(map(str, paths))} in {result.seconds:.0f} s", err=True)


@bench.command("device")
@click.option("--model-dir", type=MODEL_FOLDER, default=DEFAULT_MODEL,
              show_default=True, help="Model folder: model_int8.tflite and include/td_monitor_config_<name>.h.")
@click.option("--app-elf", type=FIRMWARE_IMAGE, default=None,
              help="Report flash/RAM of this application image (default: the bench's pipeline image).")
@click.option("--parse-frames", type=click.IntRange(1000, 10_000_000), default=200_000, show_default=True,
              help="Frames for the host capture-parser rate (tinydrift.link.protocol.bench_parse).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def device(model_dir: Path, app_elf: Path | None, parse_frames: int, as_json: bool):
    """Instructions per stage on QEMU's mps2-an386 (Cortex-M4F, -icount shift=0).

    Runs the front end on a fixed 1 s clip, the model with the optimized kernels and with
    the reference kernels, and the drift monitor (summarize + update), then checks the run
    (features against the host build of the front end, outputs against TFLite Micro).
    Exits with 1 when a check fails. It measures keyword models (49x40 features); for a
    camera model's monitor, `tinydrift drift cost MODEL/reference.json`.

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
    mean and the largest of the later ones, and the instructions a second of audio takes.

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
                   f"  stack                          {figures['stack_used_bytes']:>10,} bytes\n"
                   f"  checks: " + ", ".join(f"{name} {'ok' if ok else 'FAILED'}" for name, ok in figures["checks"].items()))
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
@click.option("--speaker-run", type=click.IntRange(1, 10_000), default=None, metavar="N",
              help="Every stream holds each speaker (plant) for at most N inferences in a row, its "
                   "own clips without repeats. Default: each speaker's clips as its pool holds them "
                   "(~10 in a mixed population, ~43 in a one-voice one).")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Processes that measure populations and scenarios side by side (default: all cores); "
                   "the figures are the same for any number.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def drift(model_dir: Path, quick: bool, out_dir: Path, no_baselines: bool, speaker_run: int | None,
          workers: int | None, as_json: bool):
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
    and KSWIN on the entropy, KS on confidence windows, MEWMA, Hotelling T2 and MMD on the input summary).
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
      tinydrift bench drift --quick --speaker-run 15    # no speaker talks more than 15 times in a row
    """
    from tinydrift.pipeline.drift_bench import bench_settings, markdown, run_drift_bench, write_outputs

    refuse_output_inside(out_dir, model_dir, "the model folder")
    log = (lambda m: None) if as_json else (lambda m: click.echo(m, err=True))
    result = run_drift_bench(model_dir, bench_settings(model_dir, quick, speaker_run), cache=out_dir / "pools", log=log,
                             baselines=not no_baselines, workers=workers or os.cpu_count() or 1)
    _show(result, write_outputs(result, out_dir), markdown, as_json)


@bench.command("wakeword")
@click.option("--model", "model_names", multiple=True,
              help="A microWakeWord model: a .tflite path or the name of one pymicro-wakeword ships "
                   "(repeat for several; default: all four it ships).")
@click.option("--quick", is_flag=True, help="Minutes of audio a model instead of an hour: a few minutes on 2 cores. "
                                            "Its monitor is calibrated for ARL0 2,000 (shorter reference sessions), "
                                            "not the shipped 100,000: a smoke run, not the figures.")
@click.option("--monitor-dir", type=input_folder("folder written by tinydrift wakeword calibrate"), default=None,
              help="Measure this calibrated monitor (its model must be among --model); default: "
                   "okay_nabu's, calibrated here on espeak-ng reference sessions.")
@click.option("--out", "out_dir", type=OUTPUT_FOLDER, default=None, metavar="FOLDER",
              help="Folder for wakeword_bench.json, wakeword_bench.md and the cached audio.  [default: "
                   "build/bench/wakeword; with --quick build/bench/wakeword_quick, so a smoke run does not "
                   "overwrite the full figures]")
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Synthesis processes (default: all cores).")
@click.option("--label-feedback-only", "label_feedback_from", type=input_file("wakeword_bench.json"), default=None,
              help="Run only the label-feedback part (a few minutes), on the monitored model's false rejects and "
                   "accepts in this stored result (e.g. docs/figures/wakeword_bench.json): the error-rate test at "
                   "DDM's textbook level and at the level calibrated per labelling mode on the reference sessions. "
                   "Writes wakeword_label_feedback.json and .md into --out.")
@click.option("--recorded-speech", "recorded_speech", type=input_folder("folder of real recordings (../shared/data)"),
              default=None, metavar="DIR",
              help="Real human speech laid out as ../shared/data (fsdd/, speech_commands_v0.01_subset/): the monitor's "
                   "false alarms and the model's false accepts on its voices too. Default: ../shared/data when it is "
                   "there, else none.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def wakeword(model_names: tuple[str, ...], quick: bool, monitor_dir: Path | None, out_dir: Path,
             workers: int | None, label_feedback_from: Path | None, recorded_speech: Path | None, as_json: bool):
    """microWakeWord's models with the field's figures, in domain and under drift.

    Per model: espeak-ng sessions of a voice satellite's room (talkers, everyday phrases,
    room noise, the wake phrase in one utterance of ten), then the same sessions with room
    noise and babble at several SNRs, reverberation and far field, gain, a band-limited,
    clipping, dead, stuck or DC-offset microphone, and sessions spoken by other languages'
    voices. Reports
    false rejects per 100 wake phrases and false accepts per hour (ESPHome's decision rule
    on TFLite Micro, as the device app's twin computes it) with their 95 % intervals and
    the hours measured; the generated C's mismatches against TFLite Micro over the in-domain
    streaming steps; and for the calibrated model (okay_nabu) the monitor's false-alarm run
    length in domain and in held-out rooms its calibration never heard (each room one
    recording of five takes of its talk, two with --quick, over its one noise; an equal share
    each, with its own alarm count), and on each room's first take, changed halfway, its detection rate, median
    delay and alarm types per scenario (with sensor health on the audio, as the device runs
    it); and with real recordings (--recorded-speech, or ../shared/data when present) its
    false alarms on their voices, heard alike. Audio, the monitor's
    calibration and each scenario's run are cached in OUT. Figures to read: the exit code is 0 unless the run fails.

    \b
    Examples:
      tinydrift bench wakeword --quick
      tinydrift bench wakeword --model okay_nabu --model alexa --json > wakeword.json
      tinydrift bench wakeword --label-feedback-only docs/figures/wakeword_bench.json
    """
    import importlib.util

    from tinydrift.errors import TinydriftError
    from tinydrift.pipeline.wakeword_bench import WakewordBenchSettings, markdown, run_wakeword_bench, write_outputs

    missing = [name for name in ("tensorflow", "tflite_micro") if importlib.util.find_spec(name) is None]
    if missing:
        raise TinydriftError(f"bench wakeword runs the device's twin on {' and '.join(missing)}, which this install "
                             "lacks: pip install 'tinydrift[train,wakeword]'")
    log = (lambda m: None) if as_json else (lambda m: click.echo(m, err=True))
    out_dir = out_dir or Path("build/bench/wakeword_quick" if quick else "build/bench/wakeword")
    if label_feedback_from is not None:
        from tinydrift.pipeline.wakeword_bench import (label_feedback_markdown, run_label_feedback_bench,
                                                       write_label_feedback_outputs)

        result = run_label_feedback_bench(label_feedback_from, WakewordBenchSettings.make(quick), cache=out_dir,
                                          workers=workers or os.cpu_count() or 1, log=log)
        paths = write_label_feedback_outputs(result, out_dir)
        if as_json:
            from tinydrift.monitor.config import jsonable

            click.echo(json.dumps(jsonable(result)))
        else:
            click.echo(label_feedback_markdown(result))
            click.echo(f"wrote {', '.join(map(str, paths))} in {result['seconds']:.0f} s", err=True)
        return
    if not model_names:
        from tinydrift.wakeword.config import builtin_models

        model_names = tuple(sorted(builtin_models()))
        if not model_names:
            raise TinydriftError("no model given and pymicro-wakeword is not installed to bring its four; give "
                                 "--model PATH.tflite, or pip install 'tinydrift[wakeword]'")
    from tinydrift.data.wakeword_audio import check_recorded_speech
    from tinydrift.pipeline.wakeword_bench import default_recorded_speech

    if recorded_speech is not None:
        check_recorded_speech(recorded_speech)
    result = run_wakeword_bench(list(model_names), WakewordBenchSettings.make(quick), cache=out_dir,
                                monitor_dir=monitor_dir, workers=workers or os.cpu_count() or 1, log=log,
                                recorded_speech=recorded_speech or default_recorded_speech())
    _show(result, write_outputs(result, out_dir), markdown, as_json)


@bench.command("fleet")
@click.option("--model-dir", type=MODEL_FOLDER, default=DEFAULT_MODEL,
              show_default=True, help="The exported model the simulated devices run.")
@click.option("--quick", is_flag=True,
              help="45 s runs instead of 10 minutes (1,000 devices still): under 3 minutes in all.")
@click.option("--out", "out_dir", type=OUTPUT_FOLDER, default=Path("build/bench/fleet"),
              show_default=True, help="Folder for fleet_bench.json, fleet_bench.md and the processes' logs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def fleet(model_dir: Path, quick: bool, out_dir: Path, as_json: bool):
    """1,000 simulated devices through mosquitto into PostgreSQL, counted in the database.

    Starts a private mosquitto and PostgreSQL, two `tinydrift collect` and
    `tinydrift fleet simulate` (the devices and the gateway's outbox and publisher), each its
    own process, and runs 1,000 devices at one INFERENCE frame a second each: once steady,
    once with the broker restarted and a collector killed mid-run (10 minutes each; --quick:
    45 s each), then heartbeats only. Reports frames lost and duplicated (every frame a device
    sent, looked up in PostgreSQL), end-to-end latency p50/p99 (outbox to committed row),
    frames/s sustained, CPU seconds of the gateway and the collectors per 1,000 devices per
    minute, and payload bytes per device and hour with and without every INFERENCE frame.
    Figures to read: the exit code is 0 unless the run itself fails.

    \b
    Examples:
      tinydrift bench fleet --quick
      tinydrift bench fleet --json > fleet.json
    """
    from tinydrift.pipeline.fleet_bench import FleetBenchSettings, markdown, run_fleet_bench, write_outputs

    log = (lambda m: None) if as_json else (lambda m: click.echo(m, err=True))
    refuse_output_inside(out_dir, model_dir, "the model folder")
    result = run_fleet_bench(model_dir, FleetBenchSettings.make(quick), out_dir, log=log)
    paths = write_outputs(result, out_dir)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        click.echo(markdown(result))
        click.echo(f"wrote {', '.join(map(str, paths))} in {result['seconds']:.0f} s", err=True)
