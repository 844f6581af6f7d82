"""The `tinydrift` command: the group and the one list of its commands.

Each command lives in the module of its role (pipeline, device, logbook, fleet, drift, bench,
codegen); this file only assembles them. A TinydriftError from any of them becomes one
line on stderr and exit code 1 (so does a file that ends too soon).
"""

from __future__ import annotations

import os
import re
import sys

import click

from tinydrift.cli import bench, codegen, device, drift, fleet, logbook, pipeline, wakeword
from tinydrift.child import exit_on_termination
from tinydrift.errors import TinydriftError
from tinydrift.quiet import hold_back_tensorflow_import, set_verbose


class TinydriftGroup(click.Group):
    """Turns TinydriftError (and an empty file, memory or a path no check caught) into one
    line on stderr and exit code 1, without a traceback."""

    def list_commands(self, ctx):
        return list(self.commands)  # the order of COMMANDS: the data flow, not the alphabet

    def invoke(self, ctx):
        exit_on_termination()  # SIGTERM/SIGHUP unwind too: QEMU and pio are stopped on the way out
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as e:
            # click reads `tinydrift label 3 -1`'s -1 as an option: say what it is instead
            if re.fullmatch(r"-\d+(\.\d*)?", e.option_name or ""):
                raise click.UsageError(f"{e.option_name}: a negative number, and no argument of this command takes one "
                                       "(see --help for their ranges)", e.ctx) from None
            raise
        except TinydriftError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            # click would say "Aborted!" and exit 1, like a failure; files are written whole or not at all
            click.secho("interrupted", fg="red", err=True)
            sys.exit(130)
        except EOFError as e:
            # click would report a bare "Aborted!": here it is a file that ended too soon
            click.secho(f"error: an input file is empty or cut short ({e}); check the files given", fg="red", err=True)
            sys.exit(1)
        except MemoryError:
            click.secho("error: not enough memory for what was asked; ask for less (fewer simulated inferences, "
                        "sessions or seconds)", fg="red", err=True)
            sys.exit(1)
        except BrokenPipeError:
            # the reader of stdout went away (`tinydrift ... | head -1`): nothing to say to it
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except OSError as e:
            # a path the command could not write or read that no check caught first
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            click.secho(f"error: {where}{e.strerror or e}; check the path (a file where a folder should be, "
                        "permissions, space)", fg="red", err=True)
            sys.exit(1)


@click.group(cls=TinydriftGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tinydrift")
@click.option("-v", "--verbose", is_flag=True,
              help="Show TensorFlow's and the converter's own logs (hidden by default).")
def main(verbose: bool):
    """tinydrift: make a deployed TinyML model notice drift by itself.

    \b
    The pipeline, one command per step:
      tinydrift data kws        synthesize the keyword-spotting set (espeak-ng)
      tinydrift data plant      draw the plant-disease set (48x48 RGB leaves)
      tinydrift train           train a DS-CNN on its features (or leaves)
      tinydrift quantize        convert to full-int8 TFLite for TFLite Micro
      tinydrift adopt           a model folder for your own full-int8 classifier
      tinydrift eval            accuracy on any clip set, on TFLite Micro or LiteRT
      tinydrift export          C headers: model, reference statistics, thresholds
      tinydrift verify          the generated C against TFLite Micro and the Python twin
      tinydrift demo            all of it, then the firmware in QEMU hearing an accent shift
      tinydrift data drift      a set changed by one drift scenario, to replay or evaluate

    \b
    A microWakeWord model (pymicro-wakeword's, or your own .tflite and JSON):
      tinydrift wakeword check | detect     what the device needs; the wakes it would log
      tinydrift wakeword export | calibrate | demo   its C, its monitor, the loop in QEMU
    """
    set_verbose(verbose)
    hold_back_tensorflow_import()


COMMANDS = (
    # the pipeline, in data-flow order
    pipeline.data, pipeline.train_cmd, pipeline.quantize_cmd, pipeline.adopt_cmd, pipeline.eval_cmd,
    pipeline.export_cmd,
    pipeline.verify, pipeline.demo_command,
    # a board: flash it, boot the emulated one, replay audio into it
    device.flash_command, device.emulate, device.replay_command, device.label_command,
    # the device's log
    logbook.capture_command, logbook.monitor_command, logbook.report_command, logbook.archive_command,
    # many devices: serial -> MQTT -> PostgreSQL
    fleet.gateway_command, fleet.collect_command, fleet.fleet,
    # lower-level steps and measurements
    codegen.model_c_command, codegen.frontend_tables_command, codegen.c_sources_command, wakeword.wakeword, drift.drift,
    bench.bench,
)
for command in COMMANDS:
    main.add_command(command)


if __name__ == "__main__":
    main()
