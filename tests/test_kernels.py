"""Op by op: random single-op Keras models, converted to full int8 by TensorFlow, run by the
generated C (the firmware's kernels, built for this host) and by TFLite Micro's reference
interpreter on many random int8 inputs. Every output element must be equal.

Each case carries its seed (in its spec and its id), so a failure reproduces alone:
    pytest tests/test_kernels.py -k conv_07
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from helpers_tflite import tflite_models
from tinydrift.target.host_model import build_host_models, run_tflm
from tinydrift.codegen.tflite_graph import read_tflite

INPUTS_PER_CASE = 200
INPUT_RANGES = [(-1.0, 1.0), (0.0, 3.0), (-6.0, 0.5), (-0.05, 0.05), (-20.0, 20.0)]
ACTIVATIONS = ["none", "relu", "relu6"]


def _conv_cases(count: int) -> list[dict]:
    cases = []
    for i in range(count):
        rng = random.Random(1000 + i)
        kernel = [rng.randint(1, 5), rng.randint(1, 5)]
        dilated = i % 5 == 3
        strides = [1, 1] if dilated else [rng.randint(1, 3), rng.randint(1, 3)]
        dilation = [rng.randint(1, 3), rng.randint(2, 3)] if dilated else [1, 1]
        groups = 2 if i % 6 == 5 else 1
        channels = rng.randint(1, 6) * groups
        filters = rng.randint(1, 6) * groups
        span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
        shape = [rng.randint(span[0], span[0] + 9), rng.randint(span[1], span[1] + 9), channels]
        cases.append(
            dict(
                kind="conv",
                seed=1000 + i,
                input_shape=shape,
                filters=filters,
                kernel=kernel,
                strides=strides,
                dilation=dilation,
                groups=groups,
                padding=rng.choice(["same", "valid"]),
                activation=ACTIVATIONS[i % 3],
                use_bias=i % 4 != 2,
                per_channel=i % 4 != 1,
                input_range=INPUT_RANGES[i % len(INPUT_RANGES)],
            )
        )
    return cases


def _pointwise_cases() -> list[dict]:
    """1x1 convolutions without padding, as DS-CNNs have them: the optimized build runs them
    with weights laid out at generation time (td_conv_widened_s8_m4). Depths that are multiples
    of 8 take its asm loop on the M4, others its C loop; odd pixel counts, strides, clamped
    activations, per-tensor scales, no bias, the deepest column it takes (256)."""
    shapes = [([5, 5, 64], 64, [1, 1]), ([4, 6, 8], 4, [2, 2]), ([3, 7, 12], 8, [1, 1]), ([6, 3, 24], 12, [1, 2]),
              ([2, 3, 4], 16, [1, 1]), ([3, 1, 256], 8, [1, 1])]
    return [dict(kind="conv", seed=1500 + i, input_shape=shape, filters=filters, kernel=[1, 1], strides=strides,
                 dilation=[1, 1], groups=1, padding="valid", activation=ACTIVATIONS[(i + 1) % 3], use_bias=i != 1,
                 per_channel=i != 2, input_range=INPUT_RANGES[i % len(INPUT_RANGES)])
            for i, (shape, filters, strides) in enumerate(shapes)]


def _depthwise_cases(count: int) -> list[dict]:
    cases = []
    for i in range(count):
        rng = random.Random(2000 + i)
        kernel = [rng.randint(1, 5), rng.randint(1, 5)]
        dilated = i % 5 == 2
        strides = [1, 1] if dilated else [rng.randint(1, 3), rng.randint(1, 3)]
        dilation = [rng.randint(2, 3), rng.randint(1, 2)] if dilated else [1, 1]
        span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
        shape = [rng.randint(span[0], span[0] + 9), rng.randint(span[1], span[1] + 9), rng.randint(1, 8)]
        cases.append(
            dict(
                kind="depthwise",
                seed=2000 + i,
                input_shape=shape,
                kernel=kernel,
                strides=strides,
                dilation=dilation,
                depth_multiplier=1 + i % 3,
                padding=rng.choice(["same", "valid"]),
                activation=ACTIVATIONS[(i + 1) % 3],
                use_bias=i % 4 != 3,
                per_channel=i % 4 != 1,
                input_range=INPUT_RANGES[(i + 2) % len(INPUT_RANGES)],
            )
        )
    return cases


def _depthwise_3x3_cases() -> list[dict]:
    """3x3, stride 1, as DS-CNNs have them: the optimized kernel's plane path (four channels
    widened into column-major planes, two vertical taps per SMLAD). Heights of every
    remainder by 4 (the last outputs of a column not stored), both paddings, clamped
    activations (its C loop), the widest input it takes (10)."""
    shapes = [([25, 5, 8], "same"), ([6, 3, 4], "valid"), ([7, 10, 12], "same"), ([28, 3, 4], "valid"),
              ([3, 4, 16], "same")]
    return [dict(kind="depthwise", seed=2500 + i, input_shape=shape, kernel=[3, 3], strides=[1, 1], dilation=[1, 1],
                 depth_multiplier=1, padding=padding, activation=ACTIVATIONS[i % 3], use_bias=i != 2,
                 per_channel=i != 3, input_range=INPUT_RANGES[(i + 1) % len(INPUT_RANGES)])
            for i, (shape, padding) in enumerate(shapes)]


def _dense_cases(count: int) -> list[dict]:
    cases = []
    for i in range(count):
        rng = random.Random(3000 + i)
        flatten = i % 2 == 0
        shape = [rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 6)] if flatten else [rng.randint(1, 40)]
        if i % 4 == 3:  # Dense over the last axis of a [rows, features] input: batched rows
            shape = [rng.randint(2, 5), rng.randint(1, 20)]
        cases.append(
            dict(
                kind="dense",
                seed=3000 + i,
                input_shape=shape,
                flatten=flatten,
                units=rng.randint(1, 20),
                activation=ACTIVATIONS[i % 3],
                use_bias=i % 5 != 4,
                per_channel=i % 3 != 1,
                input_range=INPUT_RANGES[i % len(INPUT_RANGES)],
            )
        )
    return cases


# Per-tensor FULLY_CONNECTED models whose double and float32 multipliers round apart on some
# accumulator value of the int8 output range (6 of seeds 9000-9039 do; most models have none),
# for test_fully_connected_multiplier_precision_matches_tflite_micro.
PER_TENSOR_PRECISION_SEEDS = [9003, 9004, 9008, 9031, 9033, 9036]


def _dense_per_tensor_cases(seeds: list[int]) -> list[dict]:
    cases = []
    for i, seed in enumerate(seeds):
        rng = random.Random(seed)
        cases.append(
            dict(
                kind="dense",
                seed=seed,
                input_shape=[rng.randint(4, 30)],
                flatten=False,
                units=rng.randint(2, 16),
                activation="none",
                use_bias=True,
                per_channel=False,
                input_range=INPUT_RANGES[(seed - 9000) % len(INPUT_RANGES)],
            )
        )
    return cases


def _pool_cases(kind: str, count: int, seed0: int) -> list[dict]:
    cases = []
    for i in range(count):
        rng = random.Random(seed0 + i)
        pool = [rng.randint(1, 4), rng.randint(1, 4)]
        shape = [rng.randint(pool[0], pool[0] + 8), rng.randint(pool[1], pool[1] + 8), rng.randint(1, 8)]
        cases.append(
            dict(
                kind=kind,
                seed=seed0 + i,
                input_shape=shape,
                pool=pool,
                strides=[rng.randint(1, 3), rng.randint(1, 3)],
                padding=rng.choice(["same", "valid"]),
                input_range=INPUT_RANGES[i % len(INPUT_RANGES)],
            )
        )
    return cases


def _softmax_cases() -> list[dict]:
    return [
        dict(kind="softmax", seed=5000, input_shape=[12], input_range=(-1.0, 1.0)),
        dict(kind="softmax", seed=5001, input_shape=[10], input_range=(-20.0, 20.0)),
        dict(kind="softmax", seed=5002, input_shape=[3, 4, 7], input_range=(-4.0, 8.0)),
        dict(kind="softmax", seed=5003, input_shape=[30], dense_units=12, input_range=(-1.0, 1.0)),
        dict(kind="softmax", seed=5004, input_shape=[16], dense_units=5, input_range=(0.0, 3.0), weight_scale=2.0),
        dict(kind="softmax", seed=5005, input_shape=[2, 33], input_range=(-0.05, 0.05)),
    ]


def _add_cases() -> list[dict]:
    return [
        dict(kind="add", seed=6000, variant="branches", input_shape=[6, 5, 4], channels=4, scale_ratio=3.0, activation="none"),
        dict(kind="add", seed=6001, variant="branches", input_shape=[4, 7, 3], channels=5, scale_ratio=0.2, activation="relu"),
        dict(kind="add", seed=6002, variant="residual", input_shape=[5, 5, 3], activation="none", input_range=(0.0, 3.0)),
        dict(kind="add", seed=6003, variant="residual", input_shape=[3, 8, 6], activation="relu6", input_range=(-6.0, 0.5)),
        dict(kind="add", seed=6004, variant="constant", input_shape=[4, 4, 5], activation="none", weight_scale=2.0),
        dict(kind="add", seed=6005, variant="constant", input_shape=[3, 2, 7], activation="relu", input_range=(-20.0, 20.0)),
    ]


def _logistic_cases() -> list[dict]:
    """Wide and narrow input ranges: saturation at the input radius, the Q4.27 rescale with
    several left shifts, and the uint8 output microWakeWord's models end with."""
    return [
        dict(kind="logistic", seed=5500, input_shape=[24], input_range=(-1.0, 1.0)),
        dict(kind="logistic", seed=5501, input_shape=[3, 20], input_range=(-20.0, 20.0)),
        dict(kind="logistic", seed=5502, input_shape=[40], input_range=(-0.05, 0.05)),
        dict(kind="logistic", seed=5503, input_shape=[16], dense_units=9, input_range=(-6.0, 0.5), weight_scale=2.0),
        dict(kind="logistic", seed=5504, input_shape=[30], dense_units=1, input_range=(0.0, 3.0), output_uint8=True),
        dict(kind="logistic", seed=5505, input_shape=[2, 7], input_range=(-300.0, 300.0), output_uint8=True),
    ]


def _concat_cases() -> list[dict]:
    """Along channels, width and height; the input beside a convolution of it, convolutions
    of it, and the input beside its sigmoid (a QUANTIZE from int8 to int8 rescales one)."""
    return [
        dict(kind="concat", seed=5600, variant="input_and_conv", input_shape=[4, 5, 3], axis=-1),
        dict(kind="concat", seed=5601, variant="branches", input_shape=[3, 6, 4], channels=[2, 5], axis=-1,
             input_range=(-6.0, 0.5)),
        dict(kind="concat", seed=5602, variant="branches", input_shape=[5, 3, 2], channels=[3, 3, 3], axis=1),
        dict(kind="concat", seed=5603, variant="input_and_conv", input_shape=[6, 1, 8], axis=2, input_range=(0.0, 3.0)),
        dict(kind="concat", seed=5604, variant="input_and_sigmoid", input_shape=[3, 4, 5], axis=-1,
             input_range=(-20.0, 20.0)),
        dict(kind="concat", seed=5605, variant="input_and_sigmoid", input_shape=[2, 3, 4], axis=1),
    ]


def _split_cases() -> list[dict]:
    return [
        dict(kind="split", seed=5700, input_shape=[4, 3, 10], indices=[3], axis=3),
        dict(kind="split", seed=5701, input_shape=[9, 1, 6], indices=[2, 7], axis=1, input_range=(-20.0, 20.0)),
        dict(kind="split", seed=5702, input_shape=[3, 8, 5], indices=[5], axis=2, input_range=(-0.05, 0.05)),
    ]


def _slice_cases() -> list[dict]:
    """Python slices of the batch-1 input [1, H, W, C]: steps, negative bounds, keeping
    the end, a tail Dense so the slice is not the model's output."""
    everything = [None]
    return [
        dict(kind="slice", seed=5800, input_shape=[7, 4, 6], slices=[everything, [1, 6, 2], everything, [None, 4]]),
        dict(kind="slice", seed=5801, input_shape=[17, 1, 32], slices=[everything, [8, None], everything, everything]),
        dict(kind="slice", seed=5802, input_shape=[5, 6, 3], slices=[everything, [-3, None], [None, None, 3], [1, 3]],
             input_range=(-6.0, 0.5)),
        dict(kind="slice", seed=5803, input_shape=[9, 2, 5], slices=[everything, [None, -2], [1, 2], everything],
             dense_units=4),
    ]


def _named(cases: list[dict]) -> list[tuple[str, dict]]:
    counters: dict[str, int] = {}
    named = []
    for spec in cases:
        index = counters.get(spec["kind"], 0)
        counters[spec["kind"]] = index + 1
        named.append((f"{spec['kind']}_{index:02d}", spec))
    return named


CASES = _named(
    _conv_cases(14)
    + _pointwise_cases()
    + _depthwise_cases(12)
    + _depthwise_3x3_cases()
    + _dense_cases(14)
    + _dense_per_tensor_cases(PER_TENSOR_PRECISION_SEEDS)
    + _pool_cases("avg_pool", 6, 4000)
    + _pool_cases("max_pool", 6, 4500)
    + _softmax_cases()
    + _add_cases()
    + _logistic_cases()
    + _concat_cases()
    + _split_cases()
    + _slice_cases()
)

# The operator each kind of model exists to test, and the others it may contain.
MAIN_OP = {
    "conv": "CONV_2D",
    "depthwise": "DEPTHWISE_CONV_2D",
    "dense": "FULLY_CONNECTED",
    "avg_pool": "AVERAGE_POOL_2D",
    "max_pool": "MAX_POOL_2D",
    "softmax": "SOFTMAX",
    "add": "ADD",
    "logistic": "LOGISTIC",
    "concat": "CONCATENATION",
    "split": "SPLIT_V",
    "slice": "STRIDED_SLICE",
}
HELPER_OPS = {"RESHAPE", "FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "QUANTIZE", "CONCATENATION", "LOGISTIC"}


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    converted = tflite_models([spec for _, spec in CASES])
    return {case_id: data for (case_id, _), data in zip(CASES, converted)}


@pytest.fixture(scope="module")
def host_models(models):
    """All cases' generated C in one shared library (the name prefixes keep them apart)."""
    return build_host_models(models)


def random_inputs(seed: int, count: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    inputs = rng.integers(-128, 128, size=(count, size), dtype=np.int8)
    inputs[0] = -128  # the extremes exercise saturation and clamping
    inputs[1] = 127
    return inputs


@pytest.mark.parametrize("case_id,spec", CASES, ids=[case_id for case_id, _ in CASES])
def test_generated_c_matches_tflite_micro(case_id, spec, models, host_models):
    data = models[case_id]
    opcodes = [op.opcode for op in read_tflite(data).operators]
    assert MAIN_OP[spec["kind"]] in opcodes, f"the converter produced {opcodes}"
    assert set(opcodes) <= {MAIN_OP[spec["kind"]]} | HELPER_OPS, f"unexpected operators {opcodes}"

    host = host_models[case_id]
    inputs = random_inputs(spec["seed"], INPUTS_PER_CASE, host.input_size)
    ours = host.run(inputs)
    expected = run_tflm(data, inputs)
    assert ours.shape == expected.shape
    mismatches = int(np.count_nonzero(ours != expected))
    assert mismatches == 0, (
        f"{case_id} (seed {spec['seed']}, ops {opcodes}): {mismatches} of {ours.size} output values differ; "
        f"first at input {np.argwhere(ours != expected)[0].tolist()}"
    )


# --- precision of the requantization parameters ------------------------------------------
# TFLite's source takes the per-tensor FULLY_CONNECTED scale product in float32 and the
# per-channel one in double; the pinned TFLite Micro binary does both in double. The two
# multipliers differ in their last bits only, which random inputs almost never expose; so we
# aim: patch the model's bias so that one chosen input lands every output channel on an
# accumulator value where the double and the float32 multiplier round apart.


def _srdhm(a: np.ndarray, b: int) -> np.ndarray:
    product = a.astype(np.int64) * np.int64(b)
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    return np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # truncating division


def _rounding_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    mask = (1 << exponent) - 1
    return (x >> exponent) + ((x & mask) > ((mask >> 1) + (x < 0)))


def _requantize(acc: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding), in numpy."""
    return _rounding_divide_by_pot(_srdhm(acc << max(shift, 0), multiplier), max(-shift, 0))


def _aim_at_rounding_differences(case_id: str, spec: dict, data: bytes) -> int:
    """Patch the bias of the model's FULLY_CONNECTED so that one input lands each output
    channel where TFLite's multiplier and the other precision's round apart; check that the
    generated C and TFLite Micro agree, and that the other precision would not have.
    Returns how many channels could be aimed (0: the two multipliers agree everywhere)."""
    from tinydrift.codegen import model_quant as q
    from tinydrift.target.host_model import run_generated_model

    graph = read_tflite(data)
    op = next(op for op in graph.operators if op.opcode == "FULLY_CONNECTED")
    inp, weights, bias, out = (graph.tensors[i] for i in (*op.inputs, op.outputs[0]))
    in_scale, out_scale, out_zp = inp.quantization.scale, out.quantization.scale, out.quantization.zero_point
    channels = weights.shape[0]
    ours = q.per_channel_multipliers(in_scale, weights.quantization.scales, out_scale, channels)
    filter_scales = np.resize(weights.quantization.scales, channels)
    alternative = [q.quantize_multiplier(float(np.float32(in_scale) * s) / out_scale) for s in filter_scales]
    act_min, act_max = q.activation_range(op.options["fused_activation_function"], out_scale, out_zp)

    rng = np.random.default_rng(spec["seed"])
    x = rng.integers(-128, 128, size=inp.num_elements).astype(np.int64)
    partial = (x - inp.quantization.zero_point) @ weights.data.astype(np.int64).T  # acc before bias
    new_bias = bias.data.astype(np.int64).copy()
    aimed = 0
    for c in range(channels):
        # Outputs step near acc = (k + 1/2) / scale: look a few accumulator values around each.
        real = ours[0][c] * 2.0 ** (ours[1][c] - 31)
        centers = np.round((np.arange(-260, 260) + 0.5) / real).astype(np.int64)
        candidates = np.unique((centers[:, None] + np.arange(-8, 9)).reshape(-1))
        candidates = candidates[np.abs(candidates) < (1 << 30)]
        ours_out = np.clip(_requantize(candidates, ours[0][c], ours[1][c]) + out_zp, act_min, act_max)
        alt_out = np.clip(_requantize(candidates, *alternative[c]) + out_zp, act_min, act_max)
        sensitive = candidates[ours_out != alt_out]
        if len(sensitive):
            new_bias[c] = rng.choice(sensitive) - partial[c]
            aimed += 1
    if aimed == 0:
        return 0

    old_bytes = bias.data.astype("<i4").tobytes()
    assert data.count(old_bytes) == 1
    patched = data.replace(old_bytes, new_bias.astype("<i4").tobytes())
    acc = partial + new_bias
    predicted = np.array([_requantize(acc[c : c + 1], ours[0][c], ours[1][c])[0] for c in range(channels)])
    predicted_alt = np.array([_requantize(acc[c : c + 1], *alternative[c])[0] for c in range(channels)])
    predicted = np.clip(predicted + out_zp, act_min, act_max)
    predicted_alt = np.clip(predicted_alt + out_zp, act_min, act_max)

    x8 = x.astype(np.int8)[None, :]
    tflm = run_tflm(patched, x8)[0]
    generated = run_generated_model(patched, x8)[0]
    assert np.array_equal(generated, tflm), f"{case_id}: generated {generated} != TFLite Micro {tflm}"
    assert np.array_equal(predicted, tflm), f"{case_id}: our multipliers do not predict TFLite Micro"
    assert np.count_nonzero(predicted_alt != tflm) == aimed, f"{case_id}: the other precision would not differ"
    return aimed


def _dense_with_bias(per_channel: bool) -> list[tuple[str, dict]]:
    return [
        (case_id, spec)
        for case_id, spec in CASES
        if spec["kind"] == "dense"
        and spec["use_bias"]
        and (spec["flatten"] or len(spec["input_shape"]) == 1)  # one row per input
        and (spec["per_channel"] and spec["units"] > 1) == per_channel
    ]


@pytest.mark.slow  # ~60 s: searches models for rounding differences
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_fully_connected_multiplier_precision_matches_tflite_micro(per_channel, models):
    cases = _dense_with_bias(per_channel)
    aimed = {case_id: _aim_at_rounding_differences(case_id, spec, models[case_id]) for case_id, spec in cases}
    print(f"channels aimed at rounding differences: {aimed}")
    assert sum(aimed.values()) > 0, f"no model among {list(aimed)} can tell the two precisions apart"


def test_requantization_helpers_match_the_reference_formulas(tmp_path):
    """td_requant.h on values models rarely reach (left shifts, extremes), against the
    gemmlowp formulas written out in numpy above."""
    import ctypes

    from tinydrift import firmware

    wrapper = tmp_path / "requant_wrapper.c"
    wrapper.write_text(
        '#include "kernels/td_requant.h"\n'
        "int32_t mbqm(int32_t x, int32_t m, int32_t s);\n"
        "int32_t mbqm(int32_t x, int32_t m, int32_t s) { return td_multiply_by_quantized_multiplier(x, m, s); }\n"
        "int32_t srdhm(int32_t a, int32_t b);\n"
        "int32_t srdhm(int32_t a, int32_t b) { return td_saturating_rounding_doubling_high_mul(a, b); }\n"
    )
    library = ctypes.CDLL(str(firmware.compile_host([wrapper], include_dirs=firmware.include_dirs())))
    for function in (library.mbqm, library.srdhm):
        function.restype = ctypes.c_int32
    rng = np.random.default_rng(42)
    checked = 0
    for _ in range(20000):
        shift = int(rng.integers(-31, 8))
        multiplier = int(rng.integers(1 << 30, 1 << 31))
        bound = (1 << 31) >> max(shift, 0)  # the reference's x * 2^shift must not overflow
        x = int(rng.integers(-bound, bound))
        expected = int(_requantize(np.array([x], dtype=np.int64), multiplier, shift)[0])
        assert library.mbqm(x, multiplier, shift) == expected, (x, multiplier, shift)
        checked += 1
    assert library.srdhm(-(1 << 31), -(1 << 31)) == (1 << 31) - 1  # the one saturating case
    for a, b in rng.integers(-(1 << 31), 1 << 31, size=(5000, 2)):
        assert library.srdhm(int(a), int(b)) == int(_srdhm(np.array([a], dtype=np.int64), int(b))[0])
    assert checked == 20000
