"""Lower-level generators: the C of any int8 .tflite, and the front end's const tables."""

from __future__ import annotations

from pathlib import Path

import click

from tinydrift.cli.common import progress_bars
from tinydrift.cli.params import C_NAME_PARAM, OUTPUT_FOLDER, header_file, input_file
from tinydrift.codegen.frontend_tables import DEFAULT_HEADER, write_header
from tinydrift.errors import TinydriftError


@click.command("model-c")
@click.argument("model", type=input_file(".tflite model"))
@click.option("--name", type=C_NAME_PARAM, default=None,
              help="C prefix: td_<name>_invoke(), TD_<NAME>_ARENA_BYTES...; lower-case letters, digits, '_'. "
                   "Default: the model file's name as a C name (a model folder's model_int8.tflite: the folder's, "
                   "as `tinydrift export` takes it).")
@click.option("--out", "out_dir", type=OUTPUT_FOLDER, required=True,
              help="Folder for td_model_<name>.h and td_model_<name>.c.")
@click.option("--reuse-input", is_flag=True,
              help="Let inference overwrite the input buffer (smaller arena); by default it stays intact.")
@click.option("--check", "check_count", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Also run N random int8 inputs through the generated C (built for this host) and "
                   "TFLite Micro, and fail unless every output is equal.")
def model_c_command(model: Path, name: str | None, out_dir: Path, reuse_input: bool, check_count: int):
    """Generate C for an int8 .tflite model: weights, precomputed requantization, one kernel
    call per operator and one static arena; report its arena against TFLite Micro's.
    Streaming models (resource variables with a CALL_ONCE initialiser, e.g. microWakeWord's)
    also get static state and td_<name>_reset(); --check then runs one stream from it.

    \b
    Examples:
      tinydrift model-c models/kws/model_int8.tflite --out build/c --check 100
      tinydrift model-c my_word.tflite --name my_word --out build/my_word --check 10
    """
    from tinydrift.codegen.model_c import plan_model, write_model_c
    from tinydrift.model.runtimes import tflm_arena_report
    from tinydrift.target.host_model import run_generated_and_tflm

    from tinydrift.modeldir import ModelDir, c_name_of

    if name is None:
        folder = ModelDir(model.parent)
        name = folder.default_c_name() if model.resolve() == folder.int8_model.resolve() else c_name_of(model.stem)
    data = model.read_bytes()
    plan = plan_model(data, name, preserve_input=not reuse_input, source=str(model))
    header, source = write_model_c(data, name, out_dir, preserve_input=not reuse_input)
    tflm = tflm_arena_report(data)
    click.echo(f"wrote {header} and {source}")
    click.echo(f"{len(plan.graph.operators)} operators, {plan.macs:,} multiply-accumulates per inference")
    click.echo(f"arena: {plan.arena_bytes:,} bytes; TFLite Micro {tflm['total']:,} "
               f"({tflm['head']:,} tensors + {tflm['tail']:,} persistent)")
    if plan.overlays:
        click.echo(f"in place: {len(plan.overlays) - len(plan.views)} kernels write over their input, "
                   f"{len(plan.views)} slices are views of theirs")
    if plan.state is not None:
        click.echo(f"state: {plan.state_bytes:,} bytes in {len(plan.state.variables)} variables, kept between "
                   f"invokes (td_{name}_reset() restarts them)")
    if check_count > 0:
        import numpy as np

        rng = np.random.default_rng(0)
        inputs = rng.integers(-128, 128, size=(check_count, plan.input.num_elements), dtype=np.int8)
        with progress_bars() as bars:
            ours, expected = run_generated_and_tflm(data, inputs, progress=bars("generated C vs TFLite Micro",
                                                                                 check_count))
        mismatches = int(np.count_nonzero(ours != expected))
        click.echo(f"check: {check_count} random inputs, {mismatches} of {ours.size} output values differ")
        if mismatches:
            raise TinydriftError(f"the generated C differs from TFLite Micro on {mismatches} output values")


@click.command("frontend-tables")
@click.option(
    "--output", "-o", type=header_file(stdout=True), default=DEFAULT_HEADER,
    show_default=True, help="Header to write (its name ends in .h); `-` for standard output. The default is the firmware library's own "
                            "header, which every build compiles.",
)
def frontend_tables_command(output: Path) -> None:
    """Generate the device front end's const tables from TensorFlow's microfrontend."""
    from tinydrift.codegen.frontend_tables import compute_tables, render_header

    if str(output) == "-":
        click.echo(render_header(compute_tables()), nl=False)
        return
    tables = write_header(output)
    sizes = tables.flash_bytes()
    click.echo(f"wrote {output}: {sum(sizes.values())} bytes of const tables ("
               + ", ".join(f"{k} {v}" for k, v in sizes.items()) + ")")
