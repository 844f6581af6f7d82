"""The front end's table generator: TF's tables read right, the header current and atomic."""

from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift import firmware
from tinydrift.cli.main import main
from tinydrift.codegen import frontend_tables as ft
from tinydrift.errors import TinydriftError
from tinydrift.frontend import features as frontend
from tinydrift.firmware import microfrontend_sources
from tinydrift.firmware import compile_host

# Each ctypes mirror and the C struct it stands for.
MIRRORS = {
    ft.WindowConfig: "WindowConfig",
    ft.FilterbankConfig: "FilterbankConfig",
    ft.NoiseReductionConfig: "NoiseReductionConfig",
    ft.PcanGainControlConfig: "PcanGainControlConfig",
    ft.LogScaleConfig: "LogScaleConfig",
    ft.FrontendConfig: "FrontendConfig",
    ft.WindowState: "WindowState",
    ft.FftState: "FftState",
    ft.FilterbankState: "FilterbankState",
    ft.NoiseReductionState: "NoiseReductionState",
    ft.PcanGainControlState: "PcanGainControlState",
    ft.LogScaleState: "LogScaleState",
    ft.FrontendState: "FrontendState",
}


@pytest.fixture(scope="module")
def third_party():
    return microfrontend_sources()


@pytest.fixture(scope="module")
def tables():
    return ft.compute_tables()


def run_probe(tmp_path, third_party, name: str, source: str, extra_sources=()) -> str:
    path = tmp_path / f"{name}.c"
    path.write_text(source)
    exe = firmware.compile_host([path, *extra_sources], shared=False, include_dirs=list(third_party.include_dirs),
                    defines=third_party.defines)
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


def test_ctypes_mirrors_match_the_extracted_headers(tmp_path, third_party):
    lines = []
    for mirror, c_name in MIRRORS.items():
        lines.append(f'  printf("{c_name} sizeof %zu\\n", sizeof(struct {c_name}));')
        for field, _ in mirror._fields_:
            lines.append(f'  printf("{c_name} {field} %zu\\n", offsetof(struct {c_name}, {field}));')
    lines.append('  printf("kiss_fft_state twiddles %zu\\n", offsetof(struct kiss_fft_state, twiddles));')
    source = "\n".join([
        "#include <stddef.h>",
        "#include <stdio.h>",
        '#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"',
        '#include "_kiss_fft_guts.h"',
        "int main(void) {",
        *lines,
        "  return 0;",
        "}",
    ])
    measured = {}
    for line in run_probe(tmp_path, third_party, "layout_probe", source).splitlines():
        struct, field, value = line.split()
        measured[(struct, field)] = int(value)
    expected = {}
    for mirror, c_name in MIRRORS.items():
        expected[(c_name, "sizeof")] = ctypes.sizeof(mirror)
        for field, _ in mirror._fields_:
            expected[(c_name, field)] = getattr(mirror, field).offset
    expected[("kiss_fft_state", "twiddles")] = ctypes.sizeof(ft.KissFftStateHead)
    assert measured == expected


def test_kissfft_tables_equal_kissfft_own_init(tmp_path, third_party, tables):
    """TF's twiddles, read through the mirrors, equal what the extracted kiss_fftr_alloc
    computes here (both in double precision): the reading is right."""
    source = """
#include <stdio.h>
#include "kiss_fftr.h"
#include "_kiss_fft_guts.h"
struct kiss_fftr_state { kiss_fft_cfg substate; kiss_fft_cpx *tmpbuf; kiss_fft_cpx *super_twiddles; };
static long long memory[4096];
int main(void) {
  size_t length = sizeof(memory);
  struct kiss_fftr_state *st = kiss_fftr_alloc(512, 0, memory, &length);
  int i;
  if (st == NULL) return 1;
  printf("%d\\n", st->substate->nfft);
  for (i = 0; i < 64; ++i) printf("%d\\n", st->substate->factors[i]);
  for (i = 0; i < 256; ++i) printf("%d %d\\n", st->substate->twiddles[i].r, st->substate->twiddles[i].i);
  for (i = 0; i < 128; ++i) printf("%d %d\\n", st->super_twiddles[i].r, st->super_twiddles[i].i);
  return 0;
}
"""
    kissfft = [s for s in third_party.sources if s.parent.name in ("kissfft", "tools")]
    values = np.array(run_probe(tmp_path, third_party, "kiss_probe", source, kissfft).split(), dtype=np.int64)
    assert values[0] == tables.kiss_nfft == 256
    assert np.array_equal(values[1:65], tables.kiss_factors)
    assert np.array_equal(values[65:65 + 512].reshape(256, 2), tables.kiss_twiddles)
    assert np.array_equal(values[65 + 512:].reshape(128, 2), tables.kiss_super_twiddles)


def test_tables_describe_the_host_configuration(tables):
    assert tables.sample_rate == frontend.SAMPLE_RATE
    assert tables.window_size == frontend.SAMPLE_RATE * frontend.WINDOW_MS // 1000 == 480
    assert tables.window_step == frontend.SAMPLE_RATE * frontend.STEP_MS // 1000 == 320
    assert tables.fft_size == 512 and tables.num_channels == frontend.NUM_CHANNELS
    # A Hann window in Q12: symmetric, 0 at the ends, 4096 in the middle.
    w = tables.window_coefficients
    assert np.array_equal(w, w[::-1]) and w[0] == 0 and w.max() == 4096
    # Filterbank weight + unweight is one (Q12, rounded) wherever a bin contributes.
    used = tables.weights != 0
    assert np.all(np.abs(tables.weights[used].astype(int) + tables.unweights[used] - 4096) <= 1)
    assert tables.filterbank_start_index < tables.filterbank_end_index <= tables.fft_size // 2
    assert tables.noise_smoothing_bits == 10 and tables.log_scale_shift == 6


def test_committed_header_is_current(tables):
    """td_frontend_tables.h is generated output: it must equal a fresh generation."""
    assert ft.DEFAULT_HEADER.read_text() == ft.render_header(tables), (
        "td_frontend_tables.h is stale: run `tinydrift frontend-tables`"
    )


def test_generation_is_reproducible(tables):
    again = ft.compute_tables()
    assert ft.render_header(again) == ft.render_header(tables)


def test_write_header_is_atomic_and_complete(tmp_path, tables):
    target = tmp_path / "out" / "td_frontend_tables.h"
    ft.write_header(target, tables)
    assert target.read_text() == ft.render_header(tables)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left


def test_cli_command_writes_the_header(tmp_path):
    target = tmp_path / "tables.h"
    result = CliRunner().invoke(main, ["frontend-tables"] + ["-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text() == ft.DEFAULT_HEADER.read_text()
    assert "bytes of const tables" in result.output


def test_cli_command_keeps_tensorflow_s_notices_to_itself(tmp_path):
    """Loading TensorFlow's microfrontend library loads its framework, whose C++ prints absl's
    "WARNING: All log messages before absl::InitializeLog()" and oneDNN's notice on fd 2: a
    file descriptor CliRunner does not see, so the real executable runs here."""
    import os
    import sys
    from pathlib import Path

    host = Path(__file__).resolve().parents[1] / "host"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(host), os.environ.get("PYTHONPATH")]))}
    env.pop("TINYDRIFT_VERBOSE", None)
    run = subprocess.run([sys.executable, "-m", "tinydrift", "frontend-tables", "-o", str(tmp_path / "tables.h")],
                         capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "" and run.stdout.startswith("wrote "), run.stdout + run.stderr


def test_cli_command_writes_to_standard_output_for_a_dash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["frontend-tables", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert result.output == ft.DEFAULT_HEADER.read_text() and not list(tmp_path.iterdir())
    # an unwritable place is named as asked, not by the temporary file beside it, and before
    # any work (as root too, whom access() lets write anywhere)
    result = CliRunner().invoke(main, ["frontend-tables", "-o", "/proc/tables.h"])
    assert result.exit_code == 2 and "'/proc/tables.h' cannot be created" in result.output and ".tmp" not in result.output


def test_parameters_come_from_the_host_front_end():
    params = ft.host_frontend_parameters()
    assert params["window_size"] == frontend.WINDOW_MS and params["window_step"] == frontend.STEP_MS
    assert params["num_channels"] == frontend.NUM_CHANNELS
    assert params["sample_rate"] == frontend.SAMPLE_RATE


@pytest.mark.parametrize("change", [{"left_context": 1}, {"frame_stride": 2}, {"zero_padding": True},
                                    {"enable_pcan": False}])
def test_unsupported_parameters_are_refused(change):
    params = {**ft.host_frontend_parameters(), **change}
    with pytest.raises(TinydriftError, match=next(iter(change))):
        ft.compute_tables(params)


def test_missing_parameter_is_refused():
    params = ft.host_frontend_parameters()
    del params["gain_bits"]
    with pytest.raises(TinydriftError, match="gain_bits"):
        ft.check_parameters(params)
