"""Fleet commands: the gateway (serial -> MQTT), the collector (MQTT -> PostgreSQL),
`fleet up`, a private broker and database to run them against, `fleet simulate`, simulated
devices through the gateway's path, and `fleet serve`, the dashboard."""

from __future__ import annotations

import click

from tinydrift.cli.common import DEFAULT_MODEL
from tinydrift.errors import TinydriftError
from tinydrift.fleet.outbox import KEEP_SENT_S
from tinydrift.cli.params import (BAUD, BROKER_URL, CLIENT_ID, COLLECTOR_NAME, COUNT, DATABASE_URL, FLEET_NAME,
                                  GROUP_NAME, SEED, FiniteFloat, MODEL_FOLDER, OUTPUT_FILE, SECONDS, SERIAL_URL)

BROKER_HELP = ("Broker URL: mqtt://HOST[:PORT] (1883) or mqtts://HOST[:PORT] (8883, TLS), with USER[:PASSWORD]@ "
               "if it wants them: mosquitto here, or a clustered broker (EMQX, HiveMQ).")
FLEET_HELP = "Fleet name: the topic level tinydrift/FLEET/... (letters, digits, '-' or '_')."
PROGRESS_INTERVAL = click.option("--progress-interval", type=FiniteFloat(min=0), default=10.0, show_default=True,
                                 metavar="S", help="Seconds between progress lines on stderr (0: none).")


@click.command("gateway")
@click.option("--port", "ports", type=SERIAL_URL, multiple=True, metavar="URL",
              help="A device's pyserial URL (/dev/ttyACM0, a pty, socket://HOST:PORT); repeat for several devices. "
                   "None: send what the outbox holds and stop when it is empty.")
@click.option("--broker", type=BROKER_URL, required=True, metavar="URL", help=BROKER_HELP)
@click.option("--outbox", "outbox_path", type=OUTPUT_FILE, required=True, metavar="FILE",
              help="SQLite file holding frames until the broker acknowledges them (created if missing); "
                   "a restarted gateway sends what it still holds.")
@click.option("--fleet", type=FLEET_NAME, default="default", show_default=True, help=FLEET_HELP)
@click.option("--client-id", type=CLIENT_ID, default=None, metavar="ID",
              help="MQTT client id, kept across restarts (default: from the fleet, the host and the outbox's path).")
@click.option("--baud", "baudrate", type=BAUD, default=115200, show_default=True, help="Serial speed (ignored by sockets and ptys).")
@click.option("--reconnect-timeout", type=FiniteFloat(min=-1), default=10.0, show_default=True, metavar="S",
              help="How long to keep reopening a port that disappeared (0: give it up at once; -1: forever).")
@click.option("--duration", type=SECONDS, default=None, metavar="S", help="Stop after S seconds.")
@click.option("--durable", is_flag=True, help="fsync every outbox commit (survives power loss, not only a killed process).")
@click.option("--resend-window", type=FiniteFloat(min=0), default=KEEP_SENT_S, show_default=True, metavar="S",
              help="Keep what the broker acknowledged for S seconds and send it again on each connect, for a broker "
                   "that crashed before saving it: more than the broker's save interval (mosquitto's "
                   "autosave_interval); 0: keep nothing.")
@PROGRESS_INTERVAL
def gateway_command(ports, broker, outbox_path, fleet, client_id, baudrate, reconnect_timeout, duration, durable,
                    resend_window, progress_interval):
    """Forward devices' frames from serial ports to an MQTT 5 broker.

    Each frame goes to tinydrift/FLEET/DEVICE_ID/TYPE (e.g. tinydrift/default/00000000000000a1/heartbeat)
    with QoS 1, in an envelope naming the device, its boot and its model. Every frame is
    first stored in the outbox and marked sent only when the broker acknowledges it: with the
    broker down, the gateway goes on reading the ports and sends what waits when it is back;
    a gateway that is killed and started again on the same outbox sends what it held, and
    what the broker acknowledged in the last 60 s (--resend-window) goes again on each
    connect, for a broker that crashed before saving it (collectors drop the copies). Stops on Ctrl-C or --duration, or when every port has
    closed after its device said goodbye (BYE: an emulated board that finished); exits 1
    when a port is lost for good or the outbox cannot be written. Frames still waiting for a
    broker that was away a while are no failure: the last line says how many the outbox keeps
    for the next run (which may be one without --port); but a broker never reached in the whole
    run (a wrong --broker, or one not running) exits 1, the frames kept all the same. Without
    --port it only empties the outbox (its devices away, or what `fleet simulate` left; each
    frame keeps the fleet it was read for, whatever --fleet says): it stops once the broker
    has taken everything, and exits 1 if it ends with frames still waiting.

    \b
    Examples:
      tinydrift gateway --port /dev/ttyACM0 --broker mqtt://127.0.0.1:1883 --outbox gw.sqlite
      tinydrift gateway --broker mqtt://127.0.0.1:1883 --outbox gw.sqlite   # send what it holds
      tinydrift gateway --port /dev/ttyACM0 --port /dev/ttyACM1 --fleet kws-eu \\
          --broker mqtts://gw7:secret@broker.example.org --outbox /var/lib/tinydrift/outbox.sqlite
    """
    from tinydrift.fleet.gateway import run_gateway

    def progress(stats, waiting):
        click.echo(f"read={stats.frames} acknowledged={stats.published} in_outbox={waiting} lost={stats.lost} "
                   f"corrupt={stats.corrupt}", err=True)

    if not ports and not outbox_path.exists():  # a mistyped path would be made, found empty, and called sent
        raise TinydriftError(f"no outbox at {outbox_path}: without --port the gateway only sends what an outbox holds; "
                             "give the file a gateway wrote, or --port to read a device")
    summary = run_gateway(list(ports), broker, outbox_path, fleet=fleet, client_id=client_id, baudrate=baudrate,
                          reconnect_timeout=None if reconnect_timeout < 0 else reconnect_timeout, duration=duration,
                          durable=durable, resend_window=resend_window, log=lambda m: click.echo(m, err=True),
                          progress=progress if progress_interval else None, progress_interval=progress_interval)
    click.echo(summary.line())
    # With ports, frames kept for a broker that was away a while are no failure; one never
    # reached in the whole run is a wrong --broker (or one not running), as collect says too.
    if summary.failed or (summary.left_in_outbox and (not ports or summary.broker_never_reached)):
        raise SystemExit(1)


@click.command("collect")
@click.option("--broker", type=BROKER_URL, required=True, metavar="URL", help=BROKER_HELP)
@click.option("--db", "dsn", type=DATABASE_URL, required=True, metavar="URL",
              help="PostgreSQL connection URL, e.g. postgresql://tinydrift@127.0.0.1:5432/tinydrift "
                   "(a managed PostgreSQL or TimescaleDB the same way). The schema is made or upgraded on start.")
@click.option("--fleet", type=FLEET_NAME, default="default", show_default=True, help=FLEET_HELP)
@click.option("--group", type=GROUP_NAME, default="collectors", show_default=True,
              help="Shared-subscription group: the collectors of one group split the fleet's frames.")
@click.option("--name", type=COLLECTOR_NAME, default=None, metavar="NAME",
              help="This collector's name within the group, kept across restarts: the broker keeps its session "
                   "(what it received and did not acknowledge) under it. Default: the host name; give each "
                   "collector on one host its own.")
@click.option("--model-dir", "model_dirs", type=MODEL_FOLDER, multiple=True, metavar="DIR",
              help="A model the fleet should run (repeatable). Frames of any other model are stored with "
                   "known_model false and said once per device. Default: any model.")
@click.option("--batch", "batch_size", type=COUNT, default=500, show_default=True, metavar="N",
              help="Frames per transaction at most.")
@click.option("--batch-wait", type=SECONDS, default=0.2, show_default=True, metavar="S",
              help="How long a batch waits to fill before it is written.")
@click.option("--duration", type=SECONDS, default=None, metavar="S", help="Stop after S seconds.")
@click.option("--leave", is_flag=True,
              help="When it stops, leave the group: store what the broker still sends it, then end its session, "
                   "so the group's other members take its share (with none left, the broker keeps nothing for "
                   "the fleet). `--name NAME --leave --duration 1` removes a member left behind, storing what "
                   "waits for it.")
@PROGRESS_INTERVAL
def collect_command(broker, dsn, fleet, group, name, model_dirs, batch_size, batch_wait, duration, leave,
                    progress_interval):
    """Store a fleet's frames from the broker in PostgreSQL.

    Run several with one --group (and each its own --name) to split the fleet's traffic (MQTT 5
    shared subscription). Frames are written in batches (COPY) into a frames table
    partitioned by day; a frame is acknowledged to the broker only after its batch is
    committed, so a collector killed mid-batch loses nothing, and copies delivered twice are
    stored once (by device, boot and sequence number). With the database down the collector
    acknowledges nothing, retries every second, and says so.

    \b
    Examples:
      tinydrift collect --broker mqtt://127.0.0.1:1883 --db postgresql://tinydrift@127.0.0.1:5432/tinydrift
      tinydrift collect --broker mqtt://127.0.0.1:1883 --db postgresql://... --name c2 --model-dir models/kws
    """
    from tinydrift.fleet.collector import run_collector

    def progress(stats):
        # this collector's share: the others of its group store the rest
        click.echo(f"stored_here={stats.stored} copies_dropped={stats.duplicates} rejected={stats.rejected} "
                   f"batches={stats.batches}", err=True)

    summary = run_collector(broker, dsn, fleet=fleet, group=group, name=name, model_dirs=list(model_dirs),
                            batch_size=batch_size, batch_wait=batch_wait, duration=duration, leave=leave,
                            log=lambda m: click.echo(m, err=True),
                            progress=progress if progress_interval else None, progress_interval=progress_interval)
    click.echo(summary.line())
    if summary.left:
        click.echo(f"collector {summary.name!r} left group {group!r} and the broker ended its session: the group's "
                   "other members take its share of the fleet's frames", err=True)
    elif summary.leave_failed:
        click.echo(f"collector {summary.name!r} could not leave group {group!r}: {summary.leave_failed}", err=True)
    if summary.joined and not summary.taken_over:  # one that gave way left the session to the other
        # its persistent session stays in the shared group: the broker goes on giving it a share
        from tinydrift.fleet.mqtt import SESSION_EXPIRY_S

        click.echo(f"the broker keeps the session of collector {summary.name!r} in group {group!r} for "
                   f"{SESSION_EXPIRY_S // 86400} days: its share of the fleet's frames waits there until "
                   f"`tinydrift collect --fleet {fleet} --group {group} --name {summary.name}` (and its --broker and "
                   "--db) runs again; add --leave to store it and leave the group", err=True)
    if summary.failed:
        raise SystemExit(1)


@click.group("fleet")
def fleet():
    """Many devices: a private broker and database to try the fleet path on one machine."""


@fleet.command("up")
@click.option("--broker-port", type=click.IntRange(1, 65535), default=None, metavar="PORT",
              help="Broker port on 127.0.0.1 (default: a free one).")
@click.option("--db-port", type=click.IntRange(1, 65535), default=None, metavar="PORT",
              help="PostgreSQL port on 127.0.0.1 (default: a free one).")
@click.option("--collectors", type=click.IntRange(0, 16), default=0, show_default=True, metavar="N",
              help="Also run N `tinydrift collect` storing --fleet into the database (one shared-subscription group).")
@click.option("--fleet", "fleet_name", type=FLEET_NAME, default="default", show_default=True,
              help="The fleet the --collectors store.")
@click.option("--duration", type=SECONDS, default=None, metavar="S", help="Stop them after S seconds.")
def fleet_up(broker_port, db_port, collectors, fleet_name, duration):
    """Start a private mosquitto and PostgreSQL (Debian's) in a temporary folder, print their
    URLs, and keep them running until Ctrl-C; then stop them and remove the folder. No
    system service is used or changed. (Run as root, both run as `nobody`.) With
    --collectors, collectors store the fleet's frames in the database as they come; one
    that exits is started again (it resumes its broker session, so nothing queued for it is
    lost). If the broker or the database exits, or a collector keeps exiting, everything
    stops and their folders are kept, stored frames and queue included.

    \b
    Examples:
      tinydrift fleet up --broker-port 1883 --db-port 5433
      tinydrift fleet up --broker-port 1883 --db-port 5433 --collectors 2
    """
    import signal
    import threading

    from tinydrift.fleet.services import collector_process, private_services

    stop = threading.Event()
    with private_services(broker_port, db_port, keep_on_error=True) as (broker, database):
        # Once both run, Ctrl-C and SIGTERM are the normal way to stop (exit 0); while they
        # start, Ctrl-C interrupts (exit 130) and what was made is removed.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        running = [collector_process(broker.url, database.dsn, fleet_name, f"c{k + 1}", broker.folder).start()
                   for k in range(collectors)]
        try:
            click.echo(f"broker   {broker.url}")
            click.echo(f"database {database.dsn}")
            click.echo(f"files in {broker.folder}, {database.folder}", err=True)
            if running:
                click.echo(f"{len(running)} collector{'s' if len(running) != 1 else ''} store{'' if len(running) != 1 else 's'} "
                           f"fleet {fleet_name!r} (their logs: "
                           f"{', '.join(str(c.log) for c in running)})", err=True)
            click.echo("running; Ctrl-C stops them and removes their files", err=True)
            died = _watch(broker, database, running, stop, duration)
        finally:
            for collector in running:
                collector.stop()
        if died:  # raised inside: the services stop and their folders stay
            raise TinydriftError(f"{died}: stopped everything; kept their files in {broker.folder}, "
                                 f"{database.folder} (remove them when done)")
        stored = _stored_line(database.dsn) if running else ""
    parts = ["the broker", "the database"] + ([f"{len(running)} collector{'s' if len(running) != 1 else ''}"]
                                              if running else [])
    click.echo(f"stopped {', '.join(parts[:-1])} and {parts[-1]}{stored}; removed their files", err=True)


def _stored_line(dsn: str) -> str:
    """", 1,234 frames of 3 devices were stored": what the collectors stored while it ran,
    said before the database and its files go (nothing, if it cannot be read)."""
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=5) as conn:
            frames, devices = conn.execute("SELECT count(*), count(DISTINCT (fleet, device_id)) FROM frames").fetchone()
    except Exception:  # noqa: BLE001 (no table yet, or psycopg's errors: the line goes without the count)
        return ""
    return f" ({frames:,} frames of {devices:,} device{'' if devices == 1 else 's'} were stored)"


# A collector that exits is started again, unless it has exited this many times within
# RESTART_WINDOW_S (one that fails at once on every start would only spin).
RESTART_LIMIT = 5
RESTART_WINDOW_S = 60.0


def _watch(broker, database, collectors, stop, duration: float | None) -> str | None:
    """Wait for Ctrl-C/SIGTERM or `duration`. A collector that exits meanwhile is said and
    started again; the broker or the database exiting, or a collector exiting over and over,
    ends the wait: what it was and its last log lines."""
    import time
    from collections import deque

    from tinydrift.fleet.services import log_tail

    services = [("the broker", broker.process, broker.folder / "mosquitto.log"),
                ("the database", database.process, database.folder / "postgres.log")]
    exits = [deque(maxlen=RESTART_LIMIT) for _ in collectors]
    deadline = None if duration is None else time.monotonic() + duration
    while not stop.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))):
        if deadline is not None and time.monotonic() >= deadline:
            return None
        for what, process, log in services:
            if process.poll() is not None:
                return f"{what} exited (code {process.returncode}); its log ended: {log_tail(log)}"
        for k, collector in enumerate(collectors):
            if collector.process.poll() is None:
                continue
            what = f"collector c{k + 1} exited (code {collector.process.returncode}); its log ended: {log_tail(collector.log)}"
            now = time.monotonic()
            exits[k].append(now)
            if len(exits[k]) == RESTART_LIMIT and now - exits[k][0] < RESTART_WINDOW_S:
                return f"{what}; it exited {RESTART_LIMIT} times within {RESTART_WINDOW_S:.0f} s"
            click.echo(f"{what}; started again", err=True)
            collector.start()
    return None


@fleet.command("simulate")
@click.option("--devices", type=COUNT, required=True, metavar="N", help="Simulated devices.")
@click.option("--broker", type=BROKER_URL, required=True, metavar="URL", help=BROKER_HELP)
@click.option("--fleet", "fleet_name", type=FLEET_NAME, default="default", show_default=True, help=FLEET_HELP)
@click.option("--rate", type=FiniteFloat(min=0, min_open=True, max=1000), default=1.0, show_default=True,
              metavar="INFERENCES/S",
              help="Inferences a second on each device (with --per-inference, INFERENCE frames a second).")
@click.option("--duration", type=SECONDS, default=None, metavar="S",
              help="Run for S seconds, send what is left, and stop (default: until Ctrl-C).")
@click.option("--drift-share", type=FiniteFloat(0, 1), default=0.2, show_default=True,
              help="Share of the devices that meet a drift scenario; the others never drift.")
@click.option("--scenario", "scenarios", multiple=True, metavar="NAME",
              help="A drift scenario the drifting devices meet, in turn (repeatable; default gain_down_20db, "
                   "white_noise_10db, accent, dead_microphone; see `tinydrift bench drift`).")
@click.option("--drift-within", type=COUNT, default=None, metavar="N",
              help="Drift starts at a random inference within N after commissioning (default: within the first "
                   "half of --duration, or 1,000).")
@click.option("--heartbeat-every", type=click.IntRange(0, 65535), default=100, show_default=True, metavar="K",
              help="A HEARTBEAT every K inferences (0: none, with --per-inference only).")
@click.option("--per-inference", is_flag=True,
              help="Send every INFERENCE frame too (default: heartbeats only, as CONFIG's HEARTBEAT_ONLY).")
@click.option("--quiet-pool", type=click.Choice(["control", "deployment"]), default="control", show_default=True,
              help="What never-drifting devices hear: 1,200 fresh clips of the calibrated population (control), "
                   "or the 300 the scenarios transform (quicker to build the first time; reads quieter than "
                   "calibrated).")
@click.option("--model-dir", type=MODEL_FOLDER, default=DEFAULT_MODEL, show_default=True,
              help="The exported model the devices run, with its monitor config.")
@click.option("--outbox", "outbox_path", type=OUTPUT_FILE, default=None, metavar="FILE",
              help="The gateway's outbox (default: a temporary one, removed when it was emptied).")
@click.option("--client-id", type=CLIENT_ID, default=None, metavar="ID", help="MQTT client id (default: as the gateway's).")
@click.option("--first-id", type=click.IntRange(1, 2**64 - 1), default=1, show_default=True,
              help="Device ids are FIRST-ID, FIRST-ID+1, ...")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Who drifts, when, and what each device hears.")
@click.option("--summary", "summary_path", type=OUTPUT_FILE, default=None, metavar="FILE",
              help="Write what was sent (frames per device and type, bytes) and each device's drift and alarms as JSON.")
@PROGRESS_INTERVAL
def fleet_simulate(devices, broker, fleet_name, rate, duration, drift_share, scenarios, drift_within, heartbeat_every,
                   per_inference, quiet_pool, model_dir, outbox_path, client_id, first_id, seed, summary_path,
                   progress_interval):
    """Simulated devices through the gateway's outbox to an MQTT broker.

    The devices run a keyword model (models/kws, or one exported from your recordings). Each
    device has an id and a boot count, and runs the model's drift monitor (its
    bit-exact twin) on real per-clip outputs of the int8 model: espeak-ng clips of the
    population it was calibrated for, and, for the --drift-share that drift, a scenario's
    from a random inference after commissioning on (the device's first inferences, 300 for
    models/kws). Its frames are the firmware app's (HELLO, HEARTBEAT, INFERENCE with
    --per-inference), put into the gateway's outbox where serial frames go and published as
    the gateway does; run `tinydrift collect` to store them and `tinydrift fleet serve` to
    see them. The clips' model outputs are computed once (about 2 minutes the first time)
    and cached in build/bench/drift/pools of the current folder (as --model-dir's default,
    models/kws, is the current folder's).

    \b
    Examples:
      tinydrift fleet simulate --devices 200 --rate 10 --duration 300 --broker mqtt://127.0.0.1:1883
      tinydrift fleet simulate --devices 1000 --per-inference --heartbeat-every 0 --broker mqtt://127.0.0.1:1883
    """
    import json
    import tempfile
    from pathlib import Path

    from tinydrift.atomic import write_text
    from tinydrift.fleet.mqtt import BrokerUrl
    from tinydrift.fleet.simulate import describe, run_simulation
    from tinydrift.pipeline.fleet_sim import DEFAULT_SCENARIOS, FleetSettings, make_fleet

    if heartbeat_every == 0 and not per_inference:
        raise click.BadParameter("heartbeat-only devices with no heartbeats would send nothing: give "
                                 "--per-inference or a --heartbeat-every above 0", param_hint="--heartbeat-every")
    if scenarios and drift_share == 0:
        raise click.BadParameter("--drift-share 0: no device drifts, so no device would meet "
                                 f"{', '.join(scenarios)}; give a share above 0 or no --scenario",
                                 param_hint="--scenario")
    if first_id + devices - 1 > 2**64 - 1:
        raise click.BadParameter(f"the last of {devices} devices would be {first_id + devices - 1:#x}, past the largest "
                                 f"id (2^64-1): give at most {2**64 - devices}", param_hint="--first-id")
    if summary_path is not None:
        # the summary once replaced the model's reference.json, or the outbox its frames waited in
        if outbox_path is not None and summary_path.resolve() == outbox_path.resolve():
            raise click.BadParameter("it is the --outbox, whose frames it would replace: give another file",
                                     param_hint="--summary")
        if Path(model_dir).resolve() in summary_path.resolve().parents:
            raise click.BadParameter(f"it is inside the model folder {model_dir}, which the simulation reads: give "
                                     "a file elsewhere", param_hint="--summary")
    settings = FleetSettings(devices=devices, drift_share=drift_share, scenarios=tuple(scenarios) or DEFAULT_SCENARIOS,
                             heartbeat_interval=heartbeat_every, per_inference=per_inference, rate=rate,
                             duration=duration, quiet_pool=quiet_pool, onset_within=drift_within, first_id=first_id,
                             seed=seed)
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    _require_keyword_model(model_dir)
    fleet = make_fleet(model_dir, settings, log=say)
    commission_s = fleet.config.commission_n / rate
    if duration is not None and duration <= commission_s and fleet.plan.drifting.any():
        say(f"note: devices commission on their first {fleet.config.commission_n} inferences ({commission_s:g} s at "
            f"--rate {rate:g}) and drift only after that: this run ends first")
    temporary = None
    if outbox_path is None:
        temporary = Path(tempfile.mkdtemp(prefix="tinydrift-simulate-"))
        outbox_path = temporary / "outbox.sqlite"

    def progress(stats, waiting, counts):
        latched = int((fleet.latched() != 0).sum())
        say(f"inferences={counts.inferences} sent={counts.frames} acknowledged={stats.published} in_outbox={waiting} "
            f"devices_alarmed={latched}")

    summary = run_simulation(fleet, broker, outbox_path, rate=rate, fleet_name=fleet_name, client_id=client_id,
                             duration=duration, log=say, progress=progress if progress_interval else None,
                             progress_interval=progress_interval)
    report = describe(fleet, summary)
    if summary_path is not None:
        write_text(summary_path, json.dumps(report, indent=1) + "\n")
    if temporary is not None:
        if summary.gateway.left_in_outbox:
            say(f"{summary.gateway.left_in_outbox} frames the broker did not take wait in {outbox_path}: "
                f"send them with tinydrift gateway --broker {BrokerUrl.parse(broker)} --outbox {outbox_path}")
        else:
            for leftover in temporary.iterdir():
                leftover.unlink()
            temporary.rmdir()
    click.echo(report["line"])
    if summary.gateway.failed:
        raise SystemExit(1)
    _none_delivered(summary.gateway, broker, outbox_path, fleet_name)


def _none_delivered(summary, broker, outbox_path: Path, fleet_name: str) -> None:
    """A gateway run that delivered none of its frames fails, saying why and where they wait:
    nobody subscribes to the fleet, or the broker was never reached (a wrong URL, say)."""
    if summary.stats.published or not summary.left_in_outbox:
        return
    if summary.stats.redelivered:  # the broker answered: nobody subscribes to this fleet
        raise TinydriftError(f"no collector subscribes to fleet '{fleet_name}' at {broker}, so none of the "
                             f"{summary.left_in_outbox} frames was delivered; they wait in {outbox_path}: "
                             f"start `tinydrift collect --broker {broker} --db URL --fleet {fleet_name}` first")
    raise TinydriftError(f"the broker at {broker} took none of the {summary.left_in_outbox} frames (is it "
                         f"running, and the URL right?); they wait in {outbox_path}")


def _require_keyword_model(model_dir) -> None:
    """One line unless `model_dir` is a keyword model's export: simulated devices hear
    espeak-ng clips through the front end (a camera model's once met them as a reshape error)."""
    from tinydrift.modeldir import ModelDir

    folder = ModelDir(model_dir)
    if folder.is_detector:
        raise TinydriftError(f"{model_dir} is a wake-word detector's folder; fleet simulate runs keyword models "
                             "(espeak-ng clips through the front end): give one, e.g. models/kws")
    if folder.is_camera:
        raise TinydriftError(f"{model_dir} is a camera model; fleet simulate runs keyword models (espeak-ng clips "
                             "through the front end): give one, e.g. models/kws")


@fleet.command("serve")
@click.option("--db", "dsn", type=DATABASE_URL, required=True, metavar="URL",
              help="The PostgreSQL the collectors write, e.g. postgresql://tinydrift@127.0.0.1:5433/tinydrift.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", type=click.IntRange(0, 65535), default=8050, show_default=True,
              help="Port to listen on (0: a free one, printed).")
@click.option("--fleet", "fleet_name", type=FLEET_NAME, default=None, help="Show this fleet only (default: all).")
@click.option("--duration", type=SECONDS, default=None, metavar="S", help="Stop after S seconds.")
def fleet_serve(dsn, host, port, fleet_name, duration):
    """A web dashboard over the fleet store, in any browser.

    The fleet at a glance (each device's model, boot, last seen, alarm state and types,
    estimated accuracy; drifting devices first), the alarm map (devices showing each alarm
    type per hour, rising ones marked) and each device's timeline (its estimated accuracy
    and where each alarm latched). Pages refresh themselves every 10 s.

    \b
    Example:
      tinydrift fleet serve --db postgresql://tinydrift@127.0.0.1:5433/tinydrift --port 8050
    """
    import signal
    import threading

    from tinydrift.fleet.dashboard import serve

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    serve(dsn, host, port, fleet=fleet_name, stop_event=stop, log=lambda m: click.echo(m, err=True))
