"""The device log's commands: capture it, watch it live, report it."""

from __future__ import annotations

from pathlib import Path

import click

from tinydrift.errors import TinydriftError
from tinydrift.cli.params import (ANY_FILE, BAUD, COUNT, FiniteFloat, MODEL_FOLDER, OUTPUT_FILE, OUTPUT_FOLDER, SECONDS,
                                  SERIAL_URL, input_file)


@click.command("capture")
@click.option("--port", "port_url", type=SERIAL_URL, required=True, metavar="URL",
              help="pyserial URL: /dev/ttyACM0, a pty path (/dev/pts/3) or socket://127.0.0.1:PORT "
                   "(QEMU -serial tcp:127.0.0.1:PORT,server=on).")
@click.option("--db", "db_path", required=True, type=OUTPUT_FILE, metavar="FILE",
              help="SQLite database to append to (created if missing).")
@click.option("--model-dir", type=MODEL_FOLDER, default=None, metavar="DIR",
              help="Model folder whose JSON gives the expected model hash. Default: the database's captures' "
                   "model, else the first HELLO/STATUS seen. A device that announces another model is refused "
                   "(see below).")
@click.option("--duration", type=SECONDS, default=None, metavar="S", help="Stop after S seconds.")
@click.option("--frames", "max_frames", type=COUNT, default=None, metavar="N",
              help="Stop once N valid frames have come (the rest of the read that brought the Nth is kept too: "
                   "nothing received is dropped).")
@click.option("--baud", "baudrate", type=BAUD, default=115200, show_default=True, help="Serial speed (ignored by sockets and ptys).")
@click.option("--reconnect-timeout", type=FiniteFloat(min=-1), default=10.0, show_default=True, metavar="S",
              help="How long to keep reopening a port that disappeared (0: stop at once; -1: forever).")
@click.option("--durable", is_flag=True, help="fsync every commit (survives power loss, not only a killed process).")
@click.option("--keep-going", is_flag=True, help="Do not stop when the device sends BYE (exits).")
@click.option("--progress-interval", type=FiniteFloat(min=0), default=1.0, show_default=True, metavar="S",
              help="Seconds between progress lines on stderr (0: after every commit).")
def capture_command(port_url, db_path, model_dir, duration, max_frames, baudrate, reconnect_timeout,
                    durable, keep_going, progress_interval):
    """Record the device's frames and text lines into an SQLite database.

    Every read is committed at once (WAL), so Ctrl-C or a killed process loses nothing
    already received. Lost (sequence gaps, also between two captures of one device run),
    corrupt (CRC, COBS...) and foreign-model frames (another model's, from a device reflashed
    during the run) are counted and stored. A device that only ever announces another model
    than the one expected is refused instead: a database holds one model's captures, so none of
    its frames is kept there, the database stays as it was, and the error names both models.
    While another process locks the database, frames wait in memory; a full disk stops the
    capture with the count of frames not stored. Stops on Ctrl-C, --duration, --frames, or when the
    device exits; exits 1 when the port was lost, the database could not be written, nothing
    at all came from the port, or the device runs another model than --model-dir's.

    The capture also sends the device the labels `tinydrift label ... --db` queues in its
    database (those queued before it started too) and stores the device's answer to each.

    \b
    Examples:
      tinydrift capture --port /dev/ttyACM0 --db run.db --model-dir models/kws
      tinydrift capture --port socket://127.0.0.1:4321 --db qemu.db --frames 1000
      tinydrift capture --port /dev/pts/5 --db bench.db --duration 60
    """
    from tinydrift.logbook.capture import capture

    def progress(stats):
        waiting = f" not_stored={stats.waiting}" if stats.waiting else ""
        click.echo(f"stored frames={stats.frames - stats.waiting} inferences={stats.inference_frames} "
                   f"detections={stats.detection_frames} wakes={stats.wakes} last_seq={stats.last_seq} "
                   f"lost={stats.lost} corrupt={stats.corrupt} foreign={stats.foreign}{waiting}", err=True)

    summary = capture(port_url, db_path, model_dir=model_dir, duration=duration, max_frames=max_frames,
                      baudrate=baudrate, reconnect_timeout=None if reconnect_timeout < 0 else reconnect_timeout,
                      durable=durable, stop_on_bye=not keep_going, progress=progress,
                      progress_interval=progress_interval, log=lambda m: click.echo(m, err=True))
    click.echo(summary.line())
    if summary.problem is not None:
        raise TinydriftError(summary.problem)
    if summary.stats.frames == 0 and summary.stats.corrupt > 0:
        click.echo(f"warning: not one valid frame, {summary.stats.corrupt} corrupt runs: is the device running the "
                   f"tinydrift app (and a serial port set to its speed, --baud {baudrate})?", err=True)
    if summary.failed:  # the port did not come back, or the database could not take the frames
        raise SystemExit(1)


@click.command("monitor")
@click.option("--db", "db_path", type=ANY_FILE, default=None, metavar="FILE",
              help="Capture database to watch (while `capture` writes it, or afterwards; read-only media "
                   "too); with --port, the one to capture into.")
@click.option("--port", "port_url", type=SERIAL_URL, default=None, metavar="URL",
              help="Capture from this port yourself (into --db, or a temporary file) and show it.")
@click.option("--model-dir", type=MODEL_FOLDER, default=None, metavar="DIR",
              help="Model folder: thresholds and class names from its JSON (without it, the names come from "
                   "the app's boot line, when captured), and its ATC level and class mix for the accuracy "
                   "estimate since an alarm. Without it the estimate is the device's running ATC, which a "
                   "model confidently wrong keeps high: give it whenever you have it.")
@click.option("--once", is_flag=True, help="Print one snapshot and exit (no live screen).")
@click.option("--duration", type=SECONDS, default=None, metavar="S",
              help="Watch this long, then exit (with --port and --once: capture this long before the "
                   "snapshot, default 2 s).")
@click.option("--refresh", type=SECONDS, default=0.5, show_default=True, metavar="S", help="Seconds between screen updates.")
def monitor_command(db_path, port_url, model_dir, once, duration, refresh):
    """Show the latest drift scores against their thresholds, the alarms and the link counts.

    \b
    Examples:
      tinydrift monitor --db run.db                 # follow a running capture
      tinydrift monitor --db run.db --once          # one snapshot, e.g. in a script
      tinydrift monitor --port socket://127.0.0.1:4321 --model-dir models/kws
    """
    from tinydrift.logbook.live import run_monitor

    if db_path is None and port_url is None:
        raise click.UsageError("give --db FILE, --port URL, or both")
    if once and duration is not None and port_url is None:
        raise click.UsageError("--once with --db alone prints the snapshot at once: --duration (how long to capture "
                               "first) needs --port; drop it")
    if db_path is not None:
        # captured into with --port, only read without it (an archive on read-only media is fine)
        kind = OUTPUT_FILE if port_url is not None else input_file("capture database made by `tinydrift capture`")
        ctx = click.get_current_context()
        db_path = kind.convert(str(db_path), next(p for p in ctx.command.params if p.name == "db_path"), ctx)
    run_monitor(db_path=db_path, port_url=port_url, model_dir=model_dir, once=once,
                duration=duration, refresh=refresh)


@click.command("report")
@click.argument("db_path", metavar="DB", type=input_file("capture database made by `tinydrift capture`"))
@click.option("--out", "out_dir", required=True, type=OUTPUT_FOLDER, metavar="DIR",
              help="Folder for the PNG plots and index.html.")
@click.option("--model-dir", type=MODEL_FOLDER, default=None, metavar="DIR",
              help="Model folder: thresholds and class names from its JSON (default: thresholds from the device's "
                   "HELLO, or from its STATUS when the capture began after its boot), and its ATC level and class "
                   "mix for the accuracy estimates. Without it they are the device's running ATC, which a model "
                   "confidently wrong keeps high: give it whenever you have it.")
@click.option("--truth", "truth_path", type=input_file("truth JSON file"), default=None, metavar="JSON",
              help='What a test stream really held: {"shift_index": N, "labels": [...]}, the inference '
                   "index where the shift began, counted from 1 as the device counts its inferences (300 "
                   "clean inferences, then the shift: 301), and the true class of each inference, -1 where "
                   "not known (either may be null).")
def report_command(db_path, out_dir, model_dir, truth_path):
    """Write plots (scores with thresholds and alarms, ATC accuracy estimate, entropy and
    confidence) and an HTML page summarising a capture database. With --truth, the true
    shift is marked on every plot, the true accuracy drawn beside the estimate, and the
    page gives the first alarm's delay and the accuracy before and after, true and
    estimated (`tinydrift demo` writes such a file beside its capture). Labels queued
    for the device through the database (`tinydrift label --db`) are listed with what
    became of each: taken, refused (and why), or never answered.

    \b
    Examples:
      tinydrift report run.db --out report/
      tinydrift report run.db --out report/ --model-dir models/kws
      tinydrift report build/demo/capture.db --out report/ --truth build/demo/truth.json
    """
    from tinydrift.logbook.report import Truth, write_report

    truth = Truth.load(truth_path) if truth_path else None
    result = write_report(db_path, out_dir, model_dir=model_dir, truth=truth)
    for path in result.files:
        click.echo(f"wrote {path}", err=True)
    click.echo(result.line())


@click.command("archive")
@click.argument("db_path", metavar="DB", type=input_file("capture database made by `tinydrift capture`"))
@click.argument("out_path", metavar="OUT", type=OUTPUT_FILE)
def archive_command(db_path, out_path):
    """Copy a capture database into one self-contained file OUT, to send or keep.

    While `capture` runs, and after it was killed, the newest frames live in DB-wal beside
    DB: copying DB alone loses them. OUT holds everything, needs no companion file, and
    opens anywhere (also on read-only media). DB is only read.

    \b
    Example:
      tinydrift archive run.db run-2026-12-02.db
    """
    from tinydrift.logbook.store import archive

    summary = archive(db_path, out_path)
    detected = f"{summary.detection_frames} detections, {summary.wakes} wakes, " if summary.detection_frames else ""
    click.echo(f"archived {summary.frames} frames ({summary.inference_frames} inferences, {detected}"
               f"{summary.sessions} session{'' if summary.sessions == 1 else 's'}) into {out_path}")
