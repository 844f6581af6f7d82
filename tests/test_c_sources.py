"""`tinydrift c-sources`: a firmware of one's own builds the device library from its output
alone, as a Makefile would, and gets what the project's own build gets."""

from __future__ import annotations

import shlex
import subprocess

import numpy as np
from click.testing import CliRunner

from tinydrift.cli.main import main
from tinydrift.firmware import REPO_ROOT
from tinydrift.frontend import features_int8
from tinydrift.model.runtimes import run_tflm

MODEL_DIR = REPO_ROOT / "models" / "kws"

OWN_MAIN = r"""
#include <stdio.h>
#include "td_frontend.h"
#include "td_model_kws.h"
#include "td_monitor_config_kws.h"

static td_frontend_t frontend;
static td_monitor_state_t monitor;
static int16_t pcm[TD_FRONTEND_CLIP_SAMPLES];

int main(void)
{
    int16_t summary[42] = {0};
    td_monitor_result_t result;
    unsigned i;
    if (td_monitor_init(&monitor, &td_monitor_config_kws) != TD_MONITOR_OK) {
        return 2;
    }
    if (fread(pcm, sizeof pcm[0], TD_FRONTEND_CLIP_SAMPLES, stdin) != TD_FRONTEND_CLIP_SAMPLES) {
        return 3;
    }
    if (td_frontend_process_clip(&frontend, pcm, td_kws_input()) != TD_FRONTEND_OK || td_kws_invoke() != 0) {
        return 4;
    }
    td_summarize_frames(td_kws_input(), 49, 40, summary);
    if (td_monitor_update(&monitor, &td_monitor_config_kws, summary, td_kws_output(), &result) != TD_MONITOR_OK) {
        return 5;
    }
    for (i = 0; i < TD_KWS_OUTPUT_SIZE; ++i) {
        printf("%d ", td_kws_output()[i]);
    }
    printf("\n");
    return 0;
}
"""


def c_sources(*args: str) -> str:
    result = CliRunner().invoke(main, ["c-sources", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_build_of_ones_own_from_its_output_runs_the_model_as_tflite_micro(tmp_path):
    """Compiled with gcc from `c-sources` and `c-sources --cflags` (plus the model's generated
    C and the capacities), linked with --gc-sections and no libm: the keyword model's output
    on a clip equals TFLite Micro's on the host front end's features."""
    sources = c_sources().split()
    assert {"td_frontend.c", "kiss_fft.c", "td_monitor.c", "td_conv_s8.c"} <= {p.rsplit("/", 1)[-1] for p in sources}
    own = tmp_path / "own_main.c"
    own.write_text(OWN_MAIN)
    exe = tmp_path / "own_firmware"
    command = ["gcc", "-std=c99", "-O2", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections",
               *shlex.split(c_sources("--cflags")), f"-I{MODEL_DIR / 'include'}",
               "-DTD_MONITOR_MAX_SUMMARY=42", "-DTD_MONITOR_MAX_CLASSES=12",
               str(own), *sources, str(MODEL_DIR / "include" / "td_model_kws.c"), "-o", str(exe)]
    build = subprocess.run(command, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    clip = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16)
    run = subprocess.run([str(exe)], input=clip.tobytes(), capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    expected = run_tflm((MODEL_DIR / "model_int8.tflite").read_bytes(), features_int8(clip)[None])[0]
    assert [int(v) for v in run.stdout.split()] == [int(v) for v in expected]


def test_one_stage_lists_its_files_only():
    monitor = c_sources("--stage", "monitor").split()
    assert monitor and all("/monitor/" in path for path in monitor)
    assert "FIXED_POINT" not in c_sources("--stage", "monitor", "--cflags")  # the front end's define
