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
      tinydrift verify          the generated C against TFLite Micro and the Python twin
      tinydrift demo            all of it, then the firmware in QEMU hearing an accent shift
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

    English voices form the training domain. Training hears 64 % of espeak-ng's voice
    variants, `val` another 8 %; `ref` and `test` are two independent samples of the rest
    (the deployment population), and `accent` has those variants speak through other
    languages' voices: the accent-shift drift scenario. Cached by configuration: a second run is instant.

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


@main.command("train")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="A folder made by `tinydrift data kws` (reads train.npz and val.npz).")
@click.option("--out", "model_dir", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True,
              help="Model folder: model_float.keras and training.json are written there.")
@click.option("--epochs", type=int, default=None, help="Training epochs (default 24).")
@click.option("--seed", type=int, default=0, show_default=True)
def train_cmd(data_dir: Path, model_dir: Path, epochs: int | None, seed: int):
    """Train the DS-CNN on the set's int8 features; keep the best validation epoch.

    \b
    Example:
      tinydrift train --data build/data/kws --out models/kws
    """
    from .data.clipset import ClipSet
    from .model.train import TrainConfig, train

    config = TrainConfig(seed=seed) if epochs is None else TrainConfig(seed=seed, epochs=epochs)
    if config.epochs < 1:
        raise TinydriftError(f"--epochs must be at least 1, got {config.epochs}")
    train_set, val_set = ClipSet.load(data_dir / "train.npz"), ClipSet.load(data_dir / "val.npz")
    with progress_bars() as bars:
        _, history = train(train_set, val_set, model_dir, config, progress_factory=bars)
    best = max(history, key=lambda h: h["val_accuracy"])
    click.echo(f"best epoch {best['epoch']}: validation accuracy {best['val_accuracy']:.4f} -> {model_dir}")


@main.command("quantize")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="Representative inputs come from its train.npz (the training domain).")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
def quantize_cmd(data_dir: Path, model_dir: Path):
    """Convert the float model to full-int8 TFLite (int8 in and out, batch 1) for TFLite Micro.

    The result is checked as the device will need it: int8 input of 49x40 with scale 1 and
    zero point 0, softmax output with scale 1/256, only ops the firmware implements.
    """
    from .data.clipset import ClipSet
    from .model.quantize import describe, quantize

    path = quantize(model_dir, ClipSet.load(data_dir / "train.npz").ensure_features())
    info = describe(path.read_bytes())
    click.echo(f"{path}: {path.stat().st_size} bytes, ops {', '.join(info['ops'])}")


@main.command("eval")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--runtime", type=click.Choice(["tflm", "litert"]), default="tflm", show_default=True,
              help="tflm: TFLite Micro's reference kernels (what the device computes); litert: fast.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (accuracy, n, per_class, confusion).")
def eval_cmd(model_dir: Path, data: Path, runtime: str, as_json: bool):
    """Accuracy of the int8 model on a clip set.

    DATA is a split made by `tinydrift data kws` (e.g. build/data/kws/test.npz), a folder in
    the Speech Commands layout (WORD/*.wav, 16 kHz), or an FSDD folder (8 kHz, resampled).

    \b
    Examples:
      tinydrift eval models/kws build/data/kws/accent.npz
      tinydrift eval models/kws ../shared/data/speech_commands_v0.01_subset --json
    """
    from .data.wavfolder import load_any
    from .model.evaluate import evaluate
    from .model.quantize import load_int8

    model, _ = load_int8(model_dir)
    clips = load_any(data)
    if as_json:
        emit_json(evaluate(model, clips, runtime))
        return
    with progress_bars() as bars:
        result = evaluate(model, clips, runtime, progress_factory=bars)
    click.echo(f"{data}: accuracy {result['accuracy']:.4f} on {result['n']} clips ({runtime}), "
               f"mean entropy {result['mean_entropy']:.3f}")
    for name, r in result["per_class"].items():
        click.echo(f"  {name:>10}: {r['accuracy']:.3f} ({r['n']})")


@main.command("export")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="Reads ref.npz (reference statistics, calibration), test.npz and accent.npz (checks).")
@click.option("--name", default="kws", show_default=True, help="C name of the model: td_<name>_invoke() etc.")
@click.option("--target-arl0", type=float, default=100_000, show_default=True,
              help="Inferences between false alarms, all scores together.")
@click.option("--real-data", "real_data", type=click.Path(path_type=Path), multiple=True,
              help="Also report accuracy on real recordings (Speech Commands or FSDD folder); repeatable.")
def export_cmd(model_dir: Path, data_dir: Path, name: str, target_arl0: float, real_data: tuple[Path, ...]):
    """C headers for the firmware and their JSON twin.

    Writes MODEL/include/ (the model as C with a static arena, the monitor config with the
    reference statistics and calibrated thresholds, labels and the model hash),
    MODEL/reference.json (what the host reads) and MODEL/README.md (the model card).

    \b
    Example:
      tinydrift export --model models/kws --real-data ../shared/data/speech_commands_v0.01_subset
    """
    from .codegen.export import export

    if target_arl0 < 10:
        raise TinydriftError(f"--target-arl0 must be at least 10 inferences, got {target_arl0}")
    real = {}
    for path in real_data:
        label = "fsdd" if "fsdd" in path.name.lower() else "speech_commands" if "speech" in path.name.lower() else path.name
        real[label] = path
    with progress_bars() as bars:
        ref = export(model_dir, data_dir, name=name, target_arl0=target_arl0, real_data=real,
                     progress_factory=bars, log=lambda m: click.echo(m, err=True))
    arl = ref["arl0_check"]
    click.echo(f"{model_dir}: hash {ref['model_id']}, TFLite Micro accuracy {ref['accuracy']['test']['tflm']['accuracy']:.4f} "
               f"(accent {ref['accuracy']['accent']['tflm']['accuracy']:.4f}), arena {ref['arena_bytes']} B "
               f"(TFLite Micro {ref['tflm_arena']['total']} B), ARL0 check {arl['arl0']:,.0f}")


def _register_step_commands():
    from .codegen.frontend_tables import frontend_tables_command
    from .codegen.model_cli import model_c_command
    from .device.cli_device import register
    from .cli_verify import verify
    from .device.cli_app import register as register_app
    from .device.cli_bench import bench
    from .device.cli_emulate import emulate
    from .drift.cli_drift import drift

    main.add_command(frontend_tables_command)
    main.add_command(model_c_command)
    main.add_command(emulate)
    main.add_command(bench)
    main.add_command(verify)
    main.add_command(drift)
    register(main)
    register_app(main)


_register_step_commands()


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=None, sort_keys=True))


if __name__ == "__main__":
    main()
