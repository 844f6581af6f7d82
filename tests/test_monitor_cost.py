"""The monitor's cost on the Cortex-M4, counted in QEMU (-icount shift=0)."""

from __future__ import annotations

import shutil

import pytest

from tinydrift.monitor import synthetic
from tinydrift.target.monitor_cost import measure_cost
from tinydrift.monitor.reference import build_config, reference_stats

# The front end costs ~4.16 M instructions per second of audio, the window each
# inference consumes; the int8 model comes on top of that.
FRONT_END_INSTRUCTIONS_PER_INFERENCE = 4_160_000


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("whiten", [True, False])
def test_cost_per_inference_on_cortex_m4(whiten):
    # a keyword spotter's 42 summary values: 40 channel means, the window's loudness and quiet level
    data = synthetic.synthetic_dataset(50, 60, seed=1, domain=synthetic.world(42))
    # With the commissioning reference (300 inferences) as exported, whitened as exported or not.
    config = build_config(reference_stats(data["summaries"], data["probs"], data["labels"]), whiten=whiten,
                          commission_n=300)
    cost = measure_cost(config)
    per_inference = cost["instructions_per_update"] + cost["instructions_per_summarize"]
    print(f"whiten={whiten}: {cost}; per inference {per_inference:.0f} instructions = "
          f"{100 * per_inference / FRONT_END_INSTRUCTIONS_PER_INFERENCE:.2f} % of the front end alone")
    # <= 2 % of the inference's instructions; the front end alone bounds it below.
    assert per_inference <= 0.02 * FRONT_END_INSTRUCTIONS_PER_INFERENCE
    # <= 1 KB of state, the commissioning reference included
    assert cost["instructions_per_feedback"] < 1000 and cost["state_bytes"] <= 1024
    assert cost["instructions_per_sensor320"] < 320 * 16
    # The camera summary of a 48x48 RGB image (measured 355 k, a seventh of the plant model's
    # ~2.7 M instructions): five passes over 6,912 values.
    assert cost["instructions_per_summarize_image48"] < 400_000
    # The wake-word app's summary of one inference's 3 frames x 40 channels (measured 6,010
    # before the tilt, 9,638 with it and the quiet level): a sixteenth of the keyword app's 49
    # frames' means, plus the floor counts and loudness, then the tilt's pass over the 480 new
    # samples (about 5 instructions a sample, and two levels).
    assert cost["instructions_per_summarize_stream"] < 0.6 * cost["instructions_per_summarize"] + 8 * 480
    # so the bench times the keyword app's summary for this config
    assert cost["config_summary"] == "summarize"
