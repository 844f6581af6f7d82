"""Lower-level generators: the C of any int8 .tflite, and the front end's const tables."""

from __future__ import annotations

from pathlib import Path

import click

from tinydrift.cli.common import progress_bars
from tinydrift.cli.params import C_NAME_PARAM, OUTPUT_FOLDER, header_file, input_file
from tinydrift.codegen.frontend_tables import DEFAULT_HEADER, write_header
from tinydrift.errors import TinydriftError
from tinydrift.firmware import STAGES


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
@click.option("--check", "check_count", type=click.IntRange(0, 1_000_000), default=0, show_default=True, metavar="N",
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


# every stage but the app, which needs a model of its own (docs/app.md)
LIBRARY_STAGES = tuple(stage for stage in STAGES if stage != "app")


@click.command("c-sources")
@click.option("--stage", "stages", type=click.Choice(LIBRARY_STAGES), multiple=True,
              help="Only these stages of the device library (repeat the option); default: all four, the front end "
                   "with the third-party C it needs.")
@click.option("--cflags", is_flag=True,
              help="Print the -I and -D words to compile them with instead of the files.")
def c_sources_command(stages: tuple[str, ...], cflags: bool) -> None:
    """The device library's C files (one path a line) or, with --cflags, the include folders
    and defines they build with: for a firmware of your own, with your own build system. The
    keyword front end's third-party C (TFLite Micro's micro_speech front end and kissfft) is
    fetched the first time, with pip, hash-checked, and listed with it.

    Build the library and the code that holds the monitor's state with the same
    -DTD_MONITOR_MAX_SUMMARY=N -DTD_MONITOR_MAX_CLASSES=K (42 and 12 for the keyword model;
    td_monitor_init refuses a state of another build). Link with -ffunction-sections
    -fdata-sections -Wl,--gc-sections: kissfft's float helpers the front end never calls then
    drop out (without it they need libm). A build with -fno-omit-frame-pointer on a
    Cortex-M4 needs -DTD_KERNELS_ASM=0: the kernels' assembly needs the frame pointer's
    register. The generated headers (`tinydrift export`) go beside these.

    \b
    Examples (a Makefile):
      SRCS += $(shell tinydrift c-sources) models/kws/include/td_model_kws.c
      CFLAGS += $(shell tinydrift c-sources --cflags) -Imodels/kws/include \\
                -DTD_MONITOR_MAX_SUMMARY=42 -DTD_MONITOR_MAX_CLASSES=12
      tinydrift c-sources --stage monitor      # the drift monitor alone
    """
    from tinydrift import firmware

    chosen = [stage for stage in LIBRARY_STAGES if stage in stages] if stages else list(LIBRARY_STAGES)
    sources, includes, defines = [], [firmware.LIB_SRC], {}
    for stage in chosen:
        if stage == "frontend":
            files, folders, flags = firmware.frontend_build_inputs()
            sources += files
            includes += folders
            defines.update(flags)
        else:
            sources += firmware.stage_sources(stage)
            includes.append(firmware.stage_dir(stage))
    if cflags:
        click.echo(" ".join([*(f"-I{folder}" for folder in dict.fromkeys(includes)),
                             *(f"-D{name}={value}" for name, value in defines.items())]))
        return
    for source in sources:
        click.echo(str(source))


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
