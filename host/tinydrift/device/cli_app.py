"""Click commands around the firmware app: replay, flash, demo.

Register them on the main group with `register(cli)`.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..errors import TinydriftError


@click.command("replay")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--port", "port_url", required=True, metavar="URL",
              help="pyserial URL of the device: /dev/ttyACM0, a pty path or socket://127.0.0.1:PORT "
                   "(`tinydrift emulate` and QEMU's -serial tcp).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Also store every frame the device sends back in this capture database (as `capture` does).")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="With --db: the model whose hash the frames must carry (others are flagged foreign).")
@click.option("--limit", type=int, default=None, metavar="N", help="Replay only the first N clips.")
@click.option("--reset", is_flag=True, help="Reset the device's drift monitor first.")
@click.option("--window", type=int, default=4, show_default=True, metavar="N",
              help="AUDIO frames in flight before waiting for ACKs (1: stop-and-wait, for boards with "
                   "small receive buffers).")
@click.option("--baud", "baudrate", type=int, default=115200, show_default=True,
              help="Serial speed (ignored by sockets and ptys).")
def replay_command(source: Path, port_url: str, db_path: Path | None, model_dir: Path | None, limit: int | None,
                   reset: bool, window: int, baudrate: int):
    """Stream audio into the device: each clip of SOURCE as AUDIO frames.

    SOURCE is a folder of 16 kHz 16-bit WAV files (one clip per file, any length; sorted)
    or a clip set made by `tinydrift data kws` (.npz). The device runs one inference per
    1 s window of each clip (a shorter clip is padded) and answers every frame; replay
    waits for those answers, so nothing overruns the device, and resends what the device
    reports lost.

    \b
    Examples:
      tinydrift replay build/data/kws/accent.npz --port socket://127.0.0.1:4321 --limit 50
      tinydrift replay my_wavs/ --port /dev/ttyACM0 --db run.db --window 1
    """
    from ..cli import progress_bars
    from . import protocol as P
    from .capture import open_port
    from .replay import DatabaseSink, Replayer, load_source
    from .store import load_model_info

    if limit is not None and limit < 1:
        raise TinydriftError(f"--limit must be at least 1, got {limit}")
    clips = load_source(source, limit)
    expected_hash = load_model_info(model_dir).model_hash if model_dir is not None else None
    sink = DatabaseSink(db_path, port_url, expected_hash) if db_path is not None else None
    port = open_port(port_url, baudrate, timeout=0.05)
    reason = "error"
    try:
        replayer = Replayer(port, window=window, on_items=sink)
        if reset:
            replayer.command(P.Reset(0))
        with progress_bars() as bars:
            stats = replayer.replay(clips.clips, progress=bars(f"replaying {source.name}", len(clips)))
        replayer.drain(0.2)
        reason = "replay done"
    except KeyboardInterrupt:
        reason = "interrupted"
        raise click.Abort() from None
    finally:
        port.close()
        if sink is not None:
            sink.close(reason)
    click.echo(stats.line())
    if db_path is not None:
        click.echo(f"frames stored in {db_path}")


@click.command("flash")
@click.option("--env", "env_name", required=True, metavar="ENV",
              help="PlatformIO env of firmware/platformio.ini: mps2_an386 (QEMU), nano33ble, esp32s3, "
                   "nucleo_f446re, disco_f407vg, ...")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Model folder made by `tinydrift export` (its include/ is built in). Default: models/kws.")
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
    from .flash import flash

    result = flash(env_name, model_dir, upload_port=upload_port, upload_flags=upload_flags, build_only=build_only)
    if build_only:
        click.echo(f"built {result.elf} with the model in {result.model_dir}")
    else:
        click.echo(f"{env_name}: uploaded {result.elf} (model {result.model_dir}); exit code {result.exit_code}",
                   err=True)
        click.get_current_context().exit(result.exit_code)


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("build/demo"),
              show_default=True, help="Everything goes here: data, model, firmware image, capture, report.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Use this model (made by `tinydrift export`, e.g. models/kws) instead of training one.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Use this data set (made by `tinydrift data kws`) instead of synthesizing the demo's own.")
@click.option("--epochs", type=int, default=None, help="Training epochs (default 12; `tinydrift train` uses 24).")
@click.option("--clips-per-class", type=int, default=None, metavar="N",
              help="Training clips per class (default 400; held-out splits keep their demo sizes).")
@click.option("--in-domain", type=int, default=300, show_default=True, help="Inferences before the shift.")
@click.option("--shifted", type=int, default=600, show_default=True, help="Inferences after the shift.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-verify", is_flag=True, help="Skip checking the device's log against the host twin.")
@click.option("--clean", is_flag=True, help="Delete OUT first: run from cold caches.")
def demo_command(out_dir: Path, model_dir: Path | None, data_dir: Path | None, epochs: int | None,
                 clips_per_class: int | None, in_domain: int, shifted: int, seed: int, no_verify: bool, clean: bool):
    """Drift detected on an emulated microcontroller, from nothing, in minutes.

    data (espeak-ng) -> model (train, int8) -> C headers -> firmware (PlatformIO) ->
    QEMU's Cortex-M4 hears in-domain speech, then the same words with foreign accents ->
    every frame captured into SQLite -> report (HTML + plots). Ends by saying where the
    report is, when the drift alarm came and of what type, and whether the device matched
    the host twin bit for bit. Cached under --out: a second run takes about a minute.
    """
    import os

    # TensorFlow's C++ logging (a line per epoch) would bury the progress bars; set the
    # variable yourself to see it. Failures still raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ..cli import progress_bars
    from .demo import DEMO_CLIPS_PER_CLASS, DEMO_EPOCHS, DemoConfig, clean as clean_out, run_demo

    if clean:
        clean_out(out_dir)
    clips = dict(DEMO_CLIPS_PER_CLASS)
    if clips_per_class is not None:
        if clips_per_class < 1:
            raise TinydriftError(f"--clips-per-class must be at least 1, got {clips_per_class}")
        clips["train"] = clips_per_class
        clips["val"] = max(1, clips_per_class // 10)
    config = DemoConfig(out_dir=out_dir, data_dir=data_dir, model_dir=model_dir,
                        epochs=DEMO_EPOCHS if epochs is None else epochs, clips_per_class=clips,
                        in_domain=in_domain, shifted=shifted, seed=seed, verify=not no_verify)
    started = time.monotonic()
    with progress_bars() as bars:
        result = run_demo(config, progress_factory=bars, log=lambda m: click.echo(m, err=True))
    for line in result.lines():
        click.echo(line)
    click.echo(f"total wall time {time.monotonic() - started:.0f} s")


def register(group: click.Group) -> None:
    for command in (replay_command, flash_command, demo_command):
        group.add_command(command)
