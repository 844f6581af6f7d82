"""Commands that talk to a board: flash it, boot the emulated one, replay audio into it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import termios
import threading
import tty
from pathlib import Path

import click


from tinydrift.cli.common import DEFAULT_MODEL, firmware_exit, progress_bars
from tinydrift.cli.params import (BAUD, COUNT, FIRMWARE_IMAGE, FiniteFloat, MODEL_FOLDER, OUTPUT_FILE, PCM_FILE, SECONDS,
                                  SEED, SERIAL_URL, input_path, is_wav)
from tinydrift.errors import TinydriftError
from tinydrift.target import emulator


@contextlib.contextmanager
def _keys_go_straight_through(stream):
    """On a terminal, send each key as typed (ESC commands need no Enter) without local
    echo (the firmware echoes); Ctrl-C still interrupts. Restored on the way out."""
    if not stream.isatty():
        yield
        return
    descriptor = stream.fileno()
    saved = termios.tcgetattr(descriptor)
    try:
        tty.setcbreak(descriptor)
        yield
    finally:
        termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)


def _pump(read, write) -> None:
    with contextlib.suppress(OSError):
        for data in iter(read, b""):
            write(data)


@click.command("emulate")
@click.option("--elf", type=FIRMWARE_IMAGE,
              help="Firmware image to boot (default: build firmware/ with `pio run -e mps2_an386`).")
@click.option("--model", "model_dir", type=MODEL_FOLDER, default=None, metavar="DIR",
              help="Boot the firmware built for this model folder (`tinydrift export`, `tinydrift wakeword "
                   "export`), building it first as `flash --env mps2_an386 --build-only --model DIR` does.")
@click.option("--icount", is_flag=True,
              help="Count instructions (-icount shift=0): repeatable timing, 1 cycle = 40 instructions.")
@click.option("--timeout", type=SECONDS, default=None, metavar="S",
              help="Stop QEMU after S seconds and exit 124 (default: run until the firmware exits).")
@click.option("--audio", type=PCM_FILE, default=None,
              help="What the board's microphone hears: raw 16 kHz int16 PCM, or a 16 kHz mono 16-bit WAV "
                   "(the app exits at its end).")
@click.option("--keep", "keep", type=str, default=None, metavar="FILE",
              callback=lambda ctx, param, path: _keep_file(path),
              help="The board's storage that outlives a power cycle (a real board's flash): it keeps its drift "
                   "monitor's reference, learned on its first inferences, in FILE, and takes it back when booted "
                   "again with the same FILE. Without it every boot learns anew, as a board that keeps nothing.")
@click.option("--serve", is_flag=True,
              help="Do not attach this terminal: print the serial URL and wait, for `tinydrift capture --port URL`.")
def emulate(elf: Path | None, model_dir: Path | None, icount: bool, timeout: float | None, audio: Path | None,
            keep: Path | None, serve: bool) -> None:
    """Boot the firmware on the emulated board (QEMU mps2-an386, Cortex-M4F).

    The board waits for its serial client before it runs, so no byte is lost. By default
    the client is this terminal (what you type goes to the board; what it prints comes
    back, its binary frames shown one line each on a terminal and passed through as they
    are into a pipe or file); with --serve it is whatever connects to the printed URL.
    It waits for the first client only: once that one disconnects, the board runs on and
    what it sends until another connects is lost, as a real board's UART output is with
    no host listening (with --audio it may even reach the end of its file and exit).
    The command exits with the firmware's exit code, 124 when --timeout stopped it first.

    \b
    Examples:
      tinydrift emulate --serve --audio clips.pcm   # then, elsewhere:
      tinydrift capture --port socket://127.0.0.1:PORT --db log.sqlite --model-dir models/kws
      tinydrift emulate --audio speech.wav --timeout 30
      tinydrift emulate --model build/okay_nabu --audio kitchen.wav --serve
      tinydrift emulate --audio day1.wav --keep board.bin   # learns its reference, keeps it
      tinydrift emulate --audio day2.wav --keep board.bin   # a power cycle: judges day 2 by day 1
    """
    import tempfile

    if elf is not None and model_dir is not None:
        raise click.UsageError("--elf boots that image and --model builds one for the model folder: give one of them")
    if model_dir is not None and audio is not None and _camera_input(model_dir) is not None:
        # its build never reads the microphone: the audio went unheard and the app ran on, not
        # exiting at the audio's end as --audio says
        raise click.UsageError(f"--audio: {model_dir} is a camera model, whose board hears nothing; boot it with --serve "
                               "and send it images with `tinydrift replay FOLDER --port URL`")

    if elf is not None and audio is not None and emulator.hears_microphone(elf) is False:
        raise click.UsageError(f"--audio: {elf} is a camera model's build, whose board hears nothing; boot it with "
                               "--serve and send it images with `tinydrift replay FOLDER --port URL`")

    with tempfile.TemporaryDirectory() as links:
        # the audio is checked before the firmware is built (minutes, the first time)
        pcm = _as_pcm(audio, Path(links)) if audio else None
        if model_dir is not None:
            from tinydrift.target import platformio
            from tinydrift.target.flash import flash

            elf = flash(platformio.EMULATED_ENV, model_dir, build_only=True).elf
            _say_if_unmonitored(model_dir)
        args = [emulator.audio_file_argument(pcm, Path(links))] if pcm is not None else []
        if keep is not None:
            args.append(emulator.keep_file_argument(keep, Path(links)))
        held = emulator.keep_file_held(keep) if keep is not None else contextlib.nullcontext()
        with held, emulator.start(elf, icount_shift=0 if icount else None, semihosting_args=args) as board:
            click.echo(f"tinydrift: booting {board.elf} on {emulator.MACHINE}"
                       f"{' with -icount shift=0' if icount else ''} (Ctrl-C stops)", err=True)
            if serve:
                try:  # a Ctrl-C right after the URL (a client may act on it at once) closes the board too
                    click.echo(board.url)
                    code = _wait(board, timeout)
                except KeyboardInterrupt:
                    board.close()
                    raise  # the CLI says "interrupted" and exits 130
                click.echo(f"tinydrift: {firmware_exit(code)}", err=True)
                click.get_current_context().exit(code)
            _attach_terminal(board, timeout, heard=(audio, pcm.stat().st_size // 2) if pcm is not None else None)


def _keep_file(text: str | None) -> Path | None:
    """--keep's FILE, as emulator.check_keep_file takes it: a usage error otherwise."""
    if text is None:
        return None
    try:
        return emulator.check_keep_file(Path(text) if text.strip() else "")
    except TinydriftError as exc:
        raise click.BadParameter(str(exc).removeprefix("keep file").lstrip(": "), param_hint="--keep") from None


TIMED_OUT = 124  # the exit code of a run --timeout stopped, as timeout(1) gives


def _wait(board, timeout: float | None) -> int:
    """The firmware's exit code; at --timeout, QEMU is stopped and the command exits 124."""
    try:
        return board.wait(timeout)
    except emulator.StillRunning:
        click.echo(f"tinydrift: stopped QEMU at --timeout {timeout:g} s; the firmware was still running", err=True)
        click.get_current_context().exit(TIMED_OUT)


def _as_pcm(audio: Path, folder: Path) -> Path:
    """The raw PCM the board's microphone file must be: `audio` itself, or a WAV's samples
    written into `folder`."""
    if not is_wav(audio):
        return audio
    from tinydrift.data.wavfolder import read_wav
    from tinydrift.frontend import SAMPLE_RATE

    try:
        samples = read_wav(audio, SAMPLE_RATE, needed_by="the emulated microphone")
    except TinydriftError as e:  # a WAV of another rate or layout is a bad --audio, as a PNG given there is
        raise click.BadParameter(str(e), param_hint="'--audio'") from None
    pcm = folder / "audio.raw"
    pcm.write_bytes(samples.astype("<i2").tobytes())
    return pcm


def _frame_line(item) -> str:
    """One line for what the board sent: its text, or a frame in words (a terminal shows
    frames this way; `tinydrift capture` stores them)."""
    from tinydrift.link import protocol as P

    if isinstance(item, P.TextLine):
        return item.text
    if isinstance(item, P.Corrupt):
        return f"[corrupt frame: {item.error.name}]"
    if isinstance(item, P.Hello):
        return f"[HELLO model {item.model_hash.hex()[:16]} firmware {item.fw_version}, {item.n_classes} classes]"
    if isinstance(item, P.Inference):
        alarms = "+".join(P.alarm_names(item.alarm_bits & 0xFF)) or "no alarm"
        return (f"[INFERENCE {item.inference_index}: class {item.predicted_class}, confidence "
                f"{item.confidence / 256:.2f}, {alarms}]")
    if isinstance(item, P.Detection):
        return (f"[DETECTION {item.inference_index}: probability {item.probability / 256:.2f}, window mean "
                f"{item.window_mean / 256:.2f}{', WAKE' if item.wake else ''}]")
    if isinstance(item, P.Bye):
        return f"[BYE exit code {item.exit_code} after {item.inferences} inferences]"
    return f"[{item.TYPE.name} seq {item.seq}]"


def _attach_terminal(board, timeout: float | None, heard: tuple[Path, int] | None = None) -> None:
    """This terminal as the board's console until the firmware exits; exit with its code.
    `heard`: the --audio file and its samples, to say so when the board made no inference of them."""
    from tinydrift.frontend import SAMPLE_RATE
    from tinydrift.link import protocol as P

    link = socket.create_connection(("127.0.0.1", board.port))
    stdout = sys.stdout.buffer
    terminal = sys.stdout.isatty()  # frames one line each there; raw bytes into a pipe or a file
    # parsed only where something reads the frames: a long run into a pipe passes bytes on
    parser = P.StreamParser() if terminal or heard is not None else None
    byes = []

    def show(data: bytes) -> None:
        items = parser.feed(data) if parser is not None else []
        byes.extend(item for item in items if isinstance(item, P.Bye))
        if terminal:
            data = "".join(_frame_line(item) + "\n" for item in items).encode()
        stdout.write(data)
        stdout.flush()

    output = threading.Thread(target=_pump, args=(lambda: link.recv(65536), show), daemon=True)
    output.start()
    stdin_descriptor = sys.stdin.fileno()
    threading.Thread(target=_pump, args=(lambda: os.read(stdin_descriptor, 4096), link.sendall),
                     daemon=True).start()
    try:
        with _keys_go_straight_through(sys.stdin):
            code = _wait(board, timeout)
    except KeyboardInterrupt:
        board.close()
        raise  # the CLI says "interrupted" and exits 130
    output.join(timeout=2.0)
    link.close()
    if terminal:
        stdout.write("".join(_frame_line(item) + "\n" for item in parser.flush()).encode())
    if heard is not None and byes and byes[-1].inferences == 0:
        click.echo(f"warning: {heard[0]} ({heard[1] / SAMPLE_RATE:.3f} s) ended before the board's first inference: "
                   "nothing was heard; give it longer audio", err=True)
    click.echo(f"tinydrift: {firmware_exit(code)}", err=True)
    click.get_current_context().exit(code)


@click.command("flash")
@click.option("--env", "env_name", required=True, metavar="ENV",
              help="PlatformIO env of firmware/platformio.ini: mps2_an386 (QEMU), nano33ble, esp32s3, "
                   "nucleo_f446re, disco_f407vg, ...")
@click.option("--model", "model_dir", type=MODEL_FOLDER, default=DEFAULT_MODEL, show_default=True, metavar="DIR",
              help="Model folder made by `tinydrift export` (its include/ is built in), from the working folder "
                   "as every command's.")
@click.option("--port", "upload_port", default=None, metavar="PORT", help="Upload port (default: pio finds it).")
@click.option("--upload-flag", "upload_flags", multiple=True, metavar="FLAG",
              help="Extra flags for the uploader; for mps2_an386, QEMU options (e.g. '-icount shift=0').")
@click.option("--build-only", is_flag=True, help="Build, do not upload.")
def flash_command(env_name: str, model_dir: Path | None, upload_port: str | None, upload_flags: tuple[str, ...],
                  build_only: bool):
    """Build the firmware with a model's headers in place and upload it (PlatformIO).

    For mps2_an386 the upload boots the firmware in QEMU with its console on this
    terminal (Ctrl-C stops). The real boards' envs need their PlatformIO platform, which
    is downloaded once with the internet.

    \b
    Examples:
      tinydrift flash --env nano33ble --model models/kws
      tinydrift flash --env mps2_an386 --build-only --model build/demo/model
    """
    from tinydrift.target.flash import flash

    if build_only and (upload_port or upload_flags):
        raise click.UsageError("--build-only uploads nothing, so --port and --upload-flag would go unused: "
                               "drop them, or drop --build-only")
    _say_if_unmonitored(model_dir)
    result = flash(env_name, model_dir, upload_port=upload_port, upload_flags=upload_flags, build_only=build_only)
    if build_only:
        click.echo(f"built {result.elf} with the model in {result.model_dir}")
    else:
        click.echo(f"{env_name}: uploaded {result.elf} (model {result.model_dir}); exit code {result.exit_code}",
                   err=True)
        click.get_current_context().exit(result.exit_code)


def _say_if_unmonitored(model_dir: Path | None) -> None:
    """One line when the folder is a wake-word detector without a calibrated monitor: its
    build runs the detector alone, and nothing else would say that no drift is watched."""
    from tinydrift.modeldir import ModelDir

    folder = ModelDir(model_dir if model_dir is not None else DEFAULT_MODEL)
    if folder.is_detector and not folder.has_monitor:
        click.echo(f"tinydrift: {model_dir} has no calibrated monitor, so the board runs the detector alone and "
                   f"raises no drift alarm; `tinydrift wakeword calibrate MODEL --out {model_dir}` adds one", err=True)


def _camera_input(model_dir: Path) -> tuple[int, int, int] | None:
    """(height, width, channels) of a camera model's input; None for an audio model."""
    from tinydrift.model.quantize import input_shape
    from tinydrift.modeldir import ModelDir
    from tinydrift.pipeline.export import model_input

    folder = ModelDir(model_dir)
    # a wake-word export (audio; its model is the user's own .tflite), or no model to read:
    # the build names what the folder lacks (read_int8 would advise `quantize` for a wake-word folder)
    if folder.is_detector or not folder.int8_model.is_file():
        return None
    shape = input_shape(folder.read_int8())
    return shape[1:] if model_input(shape).is_image else None


@click.command("replay")
@click.argument("source", type=input_path("WAV file or image, a folder of them, or a .npz clip or image set"))
@click.option("--port", "port_url", type=SERIAL_URL, required=True, metavar="URL",
              help="pyserial URL of the device: /dev/ttyACM0, a pty path or socket://127.0.0.1:PORT "
                   "(`tinydrift emulate` and QEMU's -serial tcp).")
@click.option("--db", "db_path", type=OUTPUT_FILE, default=None, metavar="FILE",
              help="Also store every frame the device sends back in this capture database (as `capture` does).")
@click.option("--model-dir", type=MODEL_FOLDER, default=None, metavar="DIR",
              help="The device's model: with --db, the hash the frames must carry (others are flagged "
                   "foreign); for a camera model, the size every image is fitted to, as eval fits it.")
@click.option("--limit", type=COUNT, default=None, metavar="N", help="Replay only the first N clips.")
@click.option("--shuffle", type=SEED, default=None, metavar="SEED",
              help="Send the clips in an order drawn from SEED (then --limit): a folder of class folders "
                   "otherwise goes one class after another, and the device commissions on the first.")
@click.option("--reset", is_flag=True, help="Reset the device's drift monitor first.")
@click.option("--window", type=COUNT, default=4, show_default=True, metavar="N",
              help="AUDIO frames in flight before waiting for ACKs (1: stop-and-wait, for boards with "
                   "small receive buffers).")
@click.option("--baud", "baudrate", type=BAUD, default=115200, show_default=True,
              help="Serial speed (ignored by sockets and ptys).")
@click.option("--reconnect-timeout", type=FiniteFloat(min=-1), default=10.0, show_default=True, metavar="S",
              help="How long to keep reopening a port that disappeared; the clip under way is then sent "
                   "again (0: stop at once; -1: forever).")
def replay_command(source: Path, port_url: str, db_path: Path | None, model_dir: Path | None, limit: int | None,
                   shuffle: int | None, reset: bool, window: int, baudrate: int, reconnect_timeout: float):
    """Stream audio or images into the device: each clip of SOURCE as AUDIO frames, each
    image as IMAGE frames (for a camera model's build).

    SOURCE is a folder of 16 kHz mono 16-bit WAV files (one clip per file, any length, sorted),
    one such file, or a clip set made by `tinydrift data kws` (.npz); or a folder of JPEG/PNG
    images, one image, or an image set made by `tinydrift data plant` (.npz), each image sent
    as it is (the device refuses one of another size than its model's) or, with --model-dir,
    fitted to the model's input as `tinydrift eval` fits it. A folder holding both WAVs and
    images needs --model-dir: the kind its model takes is sent, the rest counted out loud.
    The device runs one inference per
    1 s window of each clip (a shorter clip is padded; a wake-word device, one every 30 ms of
    the stream, and the line counts its wakes), one per image, and answers every frame; replay
    waits for those answers, so nothing overruns the device, and resends what the device
    reports lost. A port that disappears (a board re-enumerating) is reopened and the clip
    under way sent again.

    \b
    Examples:
      tinydrift replay build/data/kws/accent.npz --port socket://127.0.0.1:4321 --limit 50
      tinydrift replay my_wavs/ --port /dev/ttyACM0 --db run.db --window 1
      tinydrift replay build/data/plant/test.npz --port socket://127.0.0.1:4321 --limit 100
      tinydrift replay my_photos/ --port socket://127.0.0.1:4321 --model-dir models/plant   # any size, fitted

    A camera model's device to replay into, emulated: `tinydrift emulate --model models/plant
    --serve` (it prints the port).
    """
    from tinydrift.link import protocol as P
    from tinydrift.link.port import open_port, reopen_port
    from tinydrift.link.replay import Replayer, ReplaySource, load_source
    from tinydrift.logbook.capture import DatabaseSink
    from tinydrift.logbook.store import (banner_commission_n, boot_line_fields, load_model_info,
                                         still_commissioning)

    def log(message: str) -> None:
        click.echo(message, err=True)

    info = load_model_info(model_dir) if model_dir is not None else None
    expected_hash = info.model_hash if info is not None else None
    camera = _camera_input(model_dir) if model_dir is not None else None
    clips = load_source(source, limit if shuffle is None else None, fit=camera, log=log,
                        audio_model=model_dir is not None and camera is None)
    if shuffle is not None:
        clips = clips.shuffled(shuffle)
        clips = ReplaySource(clips.clips[:limit], clips.names[:limit],
                             None if clips.labels is None else clips.labels[:limit])
    elif clips.one_class_after_another():
        log(f"{source}: its sub-folders go one after another, in sorted order; the device commissions on its first "
            "inferences, so a later class reads as a change (--shuffle SEED mixes them, as a device in the field "
            "meets them)")
    if not len(clips):  # once a device started (an emulated board booted) to be sent nothing
        raise TinydriftError(f"{source} holds no clips or images: give a set with at least one")
    images = clips.clips[0].ndim == 3
    # the device would refuse each frame (ACK "not for this build"), after the port is open
    if model_dir is not None and camera is not None and not images:
        raise TinydriftError(f"{source}: audio clips, and --model-dir {model_dir} is a camera model: replay images to "
                             "it (or give the keyword model's folder)")
    if model_dir is not None and camera is None and images:
        raise TinydriftError(f"{source}: images, and --model-dir {model_dir} is an audio model: replay WAV files or a "
                             "clip set to it (or give the camera model's folder)")

    def reopen(port, exc):
        return reopen_port(port, port_url, baudrate, 0.05, None if reconnect_timeout < 0 else reconnect_timeout,
                           exc, log, lambda: False)[0]

    # Everything that can refuse the arguments comes before the database gets a session, and
    # the database before the port (opening it starts an emulated board).
    if db_path is not None:
        DatabaseSink.check(db_path, expected_hash, str(model_dir))
    port = open_port(port_url, baudrate, timeout=0.05)
    try:
        replayer = Replayer(port, window=window, reopen=reopen if reconnect_timeout != 0 else None)
        sink = (DatabaseSink(db_path, port_url, expected_hash, log=log, named_as=str(model_dir),
                             send_labels=replayer.send) if db_path is not None else None)
    except BaseException:
        port.close()
        raise
    replayer.on_items = sink
    reason = "error"
    try:
        replayer.check_device(model_hash=expected_hash, named_as=str(model_dir))
        if reset:
            replayer.command(P.Reset(0))
        with progress_bars() as bars:
            stats = replayer.replay(clips.clips, progress=bars(f"replaying {source.name}", len(clips)),
                                    names=clips.names)
        replayer.drain(0.2)
        reason = "replay done"
    except KeyboardInterrupt:
        reason = "interrupted"
        stored = f"; the frames received so far are stored in {db_path}" if db_path is not None else ""
        click.echo(f"replay interrupted{stored}", err=True)
        raise SystemExit(130) from None  # the shell's code for Ctrl-C
    except SystemExit as stop:  # SIGTERM or SIGHUP (exit_on_termination): said and recorded as such, not an error
        if stop.code not in (128 + signal.SIGTERM, 128 + signal.SIGHUP):
            raise
        reason = "terminated"
        stored = f"; the frames received so far are stored in {db_path}" if db_path is not None else ""
        click.echo(f"replay terminated{stored}", err=True)
        raise
    finally:
        replayer.port.close()
        problem = sink.close(reason) if sink is not None else None
        if problem is not None:
            log(f"replay could not close its capture session cleanly: {problem}")
    click.echo(stats.line())
    # how long the monitor commissions: none if the boot line says it kept its reference (and
    # no --reset made it learn again), else the model folder says, else the app's boot line
    fields = boot_line_fields(stats.boot_line or "", replayer.device_hash)
    if reset:
        fields.pop("reference", None)
    commission_n = banner_commission_n(fields, info.commission_n if info is not None else None)
    commissioning = still_commissioning(commission_n, stats.last_inference, stats.first_alarm is not None,
                                        "this replay")
    if commissioning is not None:
        click.echo(commissioning)
    if db_path is not None:
        click.echo(f"frames stored in {db_path}")


@click.command("label")
@click.argument("inference", type=click.IntRange(1, 2**32 - 1))
@click.argument("label")
@click.option("--model-dir", type=MODEL_FOLDER, default=None, metavar="DIR",
              help="The device's model folder, to give LABEL as a class name (as its class folders are named).")
@click.option("--port", "port_url", type=SERIAL_URL, default=None, metavar="URL",
              help="pyserial URL of a device no capture holds: /dev/ttyACM0, a pty path or socket://127.0.0.1:PORT.")
@click.option("--db", "db_path", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="The capture database of the `tinydrift capture` that holds the device's port: the label is "
                   "queued there and that capture sends it (or the next one, if none runs now).")
@click.option("--wait", "wait_s", type=FiniteFloat(min=0), default=0.0, show_default=True, metavar="SECONDS",
              help="With --db: wait this long for the device's answer to the queued label.")
@click.option("--baud", "baudrate", type=BAUD, default=115200, show_default=True,
              help="Serial speed (ignored by sockets and ptys).")
def label_command(inference: int, label: str, model_dir: Path | None, port_url: str | None, db_path: Path | None,
                  wait_s: float, baudrate: int):
    """Tell the device the true label of one of its inferences, for its drift monitor's
    error-rate test (ERROR_RATE): a LABEL frame, answered with ACK.

    INFERENCE is the index the device gave it (INFERENCE and DETECTION frames). LABEL is
    the true class's index in the model's output order (a keyword or an image model), or
    with --model-dir its name; for a wake-word device, 1 when the wake word was said
    there and 0 when it was not: 0 on a wake's index rejects it ("that was not me calling
    it"), 1 on an index where it stayed quiet reports a miss. The device keeps the last 64
    inferences (a wake-word device: its last 8 wakes and everything since the oldest of them)
    and refuses older ones. A wake-word device's error-rate test is set for one way of
    labelling (every wake, or every wake and every miss: `tinydrift wakeword calibrate
    --labels`): one calibrated for wakes alone and told of misses too false-alarms more
    often than its budget says.

    With --port the label goes straight to the device, which no other program may hold
    then. While `tinydrift capture` (or `replay --db`) holds the port, give its database with
    --db instead: the label is queued there, and the capture sends it within a second and
    stores the device's answer (taken, or refused and not sent again). A label queued while
    no capture runs is sent when the next one starts, unless the device restarted its
    inference count first (a boot or RESET: its HELLO came after, or it counts fewer
    inferences than when the label was queued): then it is marked restarted and never sent,
    as its index names another inference. The database's labels table keeps each
    label's way (queued, sent, taken, refused, restarted; unanswered after 3 sends),
    docs/protocol.md §5.

    \b
    Examples:
      tinydrift label 1234 0 --port socket://127.0.0.1:4321    # that wake was not me
      tinydrift label 1290 1 --port /dev/ttyACM0               # it missed me here
      tinydrift label 1234 0 --db kitchen.sqlite --wait 5      # through the running capture
      tinydrift label 140 "red ball" --db leaves.sqlite --model-dir models/mine
    """
    from tinydrift.link import protocol as P
    from tinydrift.link.port import open_port
    from tinydrift.link.replay import (ACK_BAD_LABEL, ACK_OK, ACK_RESULTS, ACK_UNKNOWN_INFERENCE, ACK_UNSUPPORTED,
                                       Replayer)
    from tinydrift.logbook.store import load_model_info

    what_to_do = {ACK_UNKNOWN_INFERENCE: "name one of its recent inferences (an INFERENCE or DETECTION frame's index)",
                  ACK_BAD_LABEL: "give a class of its model (a wake-word device: 1 said, 0 not said)",
                  ACK_UNSUPPORTED: "this build has no drift monitor to take labels"}

    def refused(result: int) -> TinydriftError:
        return TinydriftError(f"the device refused label {label} for inference {inference} "
                              f"({ACK_RESULTS.get(result, f'result {result}')}): "
                              f"{what_to_do.get(result, 'see docs/app.md')}")

    label = _class_index(label, model_dir)
    expected = load_model_info(model_dir).model_hash if model_dir is not None else None
    if (port_url is None) == (db_path is None):
        raise TinydriftError("give --port URL (the device itself) or --db FILE (the database of the capture that "
                             "holds its port), one of the two")
    if port_url is not None and wait_s:
        raise click.BadParameter("--wait is for --db (a label queued for the capture to send); with --port the "
                                 "device's answer is waited for anyway", param_hint="--wait")
    if db_path is not None:
        if expected is not None:
            _check_capture_model(db_path, expected, model_dir)
        _queue_label(db_path, inference, label, wait_s, refused)
        return
    port = open_port(port_url, baudrate, timeout=0.05)
    try:
        replayer = Replayer(port)
        if expected is not None:  # a class name read in another model's classes is another class
            replayer.check_device(model_hash=expected, named_as=str(model_dir))
        before = replayer.status()
        ack = replayer.command(P.Label(0, inference, label))
        after = replayer.status() if ack.result == ACK_OK and before is not None else None
    finally:
        port.close()
    if ack.result != ACK_OK:
        raise refused(ack.result)
    if after is not None and after.labels is not None and before.labels is not None and after.labels == before.labels:
        # the device acknowledges a label again without counting it (a resend of one it took)
        click.echo(f"inference {inference}: label {label} acknowledged but not counted: the device already took a "
                   "label for that inference, and the first one is the one that counts")
        return
    click.echo(f"inference {inference}: label {label} taken")


def _check_capture_model(db_path: Path, expected: bytes, model_dir: Path) -> None:
    """One line unless the device the capture holds runs `model_dir`'s model (its HELLO or
    STATUS says): a class name read in another model's classes names another class."""
    from tinydrift.logbook.store import device_hello, open_db

    conn = open_db(db_path)
    try:
        hello = device_hello(conn)
    finally:
        conn.close()
    if hello is not None and hello.model_hash != expected:
        raise TinydriftError(f"{db_path}: its device runs model {hello.model_hash[:8].hex()}, not {model_dir}'s "
                             f"({expected[:8].hex()}): give the folder of the model it runs")


def _class_index(label: str, model_dir: Path | None) -> int:
    """LABEL as the device takes it: a class index (0-255), or with `model_dir` a class name."""
    if label.strip().isdigit():
        if int(label) > 255:
            raise click.BadParameter(f"{label} is not a class index (0-255)", param_hint="'LABEL'")
        return int(label)
    if model_dir is None:
        raise click.BadParameter(f"{label!r} is not a class index (0-255); to give a class name, add --model-dir DIR "
                                 "(the device's model folder)", param_hint="'LABEL'")
    from tinydrift.modeldir import ModelDir

    names = ModelDir(model_dir).require().labels
    if label not in names:
        raise click.BadParameter(f"{label!r} is not a class of {model_dir} ({', '.join(names)})", param_hint="'LABEL'")
    return names.index(label)


def _queue_label(db_path: Path, inference: int, label: int, wait_s: float, refused) -> None:
    """`tinydrift label --db`: queue the label for the capture holding the port, and with
    `wait_s` wait for the device's answer that capture stores."""
    import time

    from tinydrift.logbook.store import held_by_a_session, open_db, queue_label, read_labels

    label_id = queue_label(db_path, inference, label)
    deadline = time.monotonic() + wait_s
    conn = open_db(db_path)
    try:
        while time.monotonic() < deadline:
            (row,) = read_labels(conn, label_id)
            if row["state"] in ("taken", "refused", "unanswered", "restarted"):
                break
            time.sleep(0.1)
        else:
            row = None
    finally:
        conn.close()
    running = held_by_a_session(db_path)
    if row is not None:
        if row["state"] == "taken":
            click.echo(f"inference {inference}: label {label} taken (through the capture in {db_path})")
            return
        if row["state"] == "refused":
            raise refused(row["result"])
        from tinydrift.errors import TinydriftError

        if row["state"] == "restarted":
            raise TinydriftError(f"label {label} for inference {inference}: not sent, the device restarted its "
                                 "inference count (a boot, or RESET) after it was queued, so that index names "
                                 "another inference now; label an inference of the new count")
        raise TinydriftError(f"label {label} for inference {inference}: sent {row['attempts']} times, never "
                             "answered; is the tinydrift app running on the device?")
    sender = ("the capture or replay holding the device's port sends it" if running else
              f"no capture or replay runs on it now: the next `tinydrift capture --db {db_path}` (or `replay --db`) "
              "on the device's port sends it")
    click.echo(f"inference {inference}: label {label} queued in {db_path} (queue entry {label_id}); {sender}"
               + (f" (no answer within {wait_s:g} s)" if wait_s else ""))
