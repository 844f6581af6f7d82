"""MLPerf Tiny's keyword-spotting DS-CNN (tinydrift.model.mlperf_dscnn): its layers and
multiply-accumulates as published, and the generated C on the emulated Cortex-M4 equal to
TFLite Micro on many inputs. The first run converts the model (~20 s), later runs read it
from build/models."""

from __future__ import annotations

import re

import numpy as np
import pytest

from test_kernels_optimized import needs_arm
from tinydrift.codegen.model_c import plan_model
from tinydrift.codegen.model_lowering import KernelCall
from tinydrift.model.mlperf_dscnn import MLPERF_MACS, mlperf_dscnn_int8, mlperf_inputs
from tinydrift.target import emulator
from tinydrift.target.bench import build_model_check

# The slow tier: converting the model takes 20-30 s on a clean clone. `tinydrift bench device`
# runs it, and the project's DS-CNN runs the same kernels bit-exact against TFLite Micro on
# the emulated M4 in the default tier (test_kernels_optimized).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tflite() -> bytes:
    return mlperf_dscnn_int8()


def test_layers_and_macs_are_the_published_ones(tflite):
    plan = plan_model(tflite, "mlperf")
    graph = plan.graph
    calls = [(step.function, step.macs) for step in plan.steps if isinstance(step, KernelCall)]
    assert calls == [("td_conv_s8", 320_000)] + [("td_depthwise_conv_s8", 72_000), ("td_conv_s8", 512_000)] * 4 + [
        ("td_avg_pool_s8", 0), ("td_fully_connected_s8", 768), ("td_softmax_s8", 0)]
    assert plan.macs == MLPERF_MACS == 2_656_768
    shapes = [tuple(graph.tensors[op.outputs[0]].shape) for op in graph.operators]
    assert shapes[0] == (1, 25, 5, 64) and shapes[-1] == (1, 12)
    assert tuple(plan.input.shape) == (1, 49, 10, 1)
    # 10x4 first kernel over one input channel; 3x3 depthwise; 1x1 pointwise 64 -> 64
    first_weights = graph.tensors[graph.operators[0].inputs[1]]
    assert tuple(first_weights.shape) == (64, 10, 4, 1)
    assert tuple(graph.tensors[graph.operators[1].inputs[1]].shape) == (1, 3, 3, 64)
    assert tuple(graph.tensors[graph.operators[2].inputs[1]].shape) == (64, 1, 1, 64)


@needs_arm
@pytest.mark.parametrize("optimized, count", [(True, 200), (False, 8)])
def test_generated_c_on_the_m4_equals_tflite_micro(tflite, optimized, count):
    """Every output byte of the optimized kernels on 200 inputs, of the reference kernels on
    8 (they run about ten times the instructions), equals TFLite Micro's; the outputs
    differ from input to input, so the check is not one answer repeated."""
    from tinydrift.model.runtimes import run_tflm

    inputs = mlperf_inputs(count, seed=7)
    elf, _ = build_model_check(tflite, inputs, optimized=optimized)
    result = emulator.run(elf, timeout=300)
    text = result.output.decode(errors="replace")
    assert result.exit_code == 0 and "td_model_check done" in text, text[-1000:]
    lines = re.findall(r"^td_model_check (\d+) ([0-9a-f]+)$", text, re.MULTILINE)
    device = np.stack([np.frombuffer(bytes.fromhex(h), dtype=np.int8) for _, h in lines])
    expected = run_tflm(tflite, inputs)
    assert len(device) == count
    assert np.array_equal(device, expected), f"{int(np.count_nonzero(device != expected))} values differ"
    assert len({row.tobytes() for row in expected}) > count // 2
