"""`tinydrift verify MODEL_DIR`: the exported C (front end, model, monitor) built for this
host and compared with its references, element by element.

Register in host/tinydrift/cli.py with:
    from .cli_verify import verify
    main.add_command(verify)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .verify import DEFAULT_SAMPLES


@click.command("verify")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: per stage, inputs and mismatches.")
@click.option("--samples", type=click.IntRange(min=1), default=DEFAULT_SAMPLES, show_default=True,
              help="Clips to run (and as many random int8 model inputs).")
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=None,
              help="Clip set (.npz) or WAV folder. Default: build/data/kws/test.npz, else ../shared/data "
                   "recordings, else synthesized noise and tones.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which clips, random inputs and event stream.")
def verify(model_dir: Path, as_json: bool, samples: int, data: Path | None, seed: int):
    """Check the C generated for MODEL_DIR against its references: C front end vs the host
    front end, generated model C vs TFLite Micro, C monitor vs the Python twin.

    Exit code 1 if any element of any stage differs."""
    from .verify import format_report, verify_model

    report = verify_model(model_dir, samples=samples, data=data, seed=seed)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        click.echo(format_report(report))
    if not report.ok:
        sys.exit(1)
