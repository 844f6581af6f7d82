"""Whole models through the C generator: the project's DS-CNN and the reference layout against
TFLite Micro (outputs and arena), refusals, a sanitized standalone build, the Cortex-M4
cross-build, and the generator's parts (multipliers, arena planner, reader)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from helpers_tflite import structured_int8_inputs, tflite_model, tflite_models
from tinydrift.codegen import model_quant as q
from tinydrift.codegen.model_arena import Buffer, check_plan, plan_arena
from tinydrift.codegen.model_c import generate_model_c, plan_model, write_model_c
from tinydrift import firmware
from tinydrift.cli import main
from tinydrift.firmware import REPO_ROOT
from tinydrift.target.host_model import (
    build_host_models,
    build_model_executable,
    run_generated_and_tflm,
    run_model_executable,
    run_tflm,
)
from tinydrift.model.runtimes import tflm_arena_report
from tinydrift.codegen.tflite_graph import count_macs, read_tflite
from tinydrift.errors import TinydriftError

# The project's model (tinydrift.model.dscnn) and the reference layout (4 stride-1 blocks),
# per-tensor quantized for variety; random weights with trained-like BatchNorm statistics.
PROJECT_DS_CNN = dict(kind="project_ds_cnn", seed=7000, channels=64, classes=12, input_shape=[49, 40, 1])
DESIGN_DS_CNN = dict(kind="ds_cnn", seed=7100, channels=32, classes=12, input_shape=[49, 40, 1], per_channel=False)
FULL_GRAPH_INPUTS = 1000


@pytest.fixture(scope="module")
def ds_cnn_models() -> dict[str, bytes]:
    project, design = tflite_models([PROJECT_DS_CNN, DESIGN_DS_CNN])
    return {"project": project, "design": design}


def full_graph_inputs(seed: int, count: int) -> np.ndarray:
    """Feature-map-like inputs (most), uniform noise and the int8 extremes."""
    inputs = structured_int8_inputs(seed, count, (49, 40, 1)).reshape(count, -1)
    rng = np.random.default_rng(seed)
    inputs[: count // 10] = rng.integers(-128, 128, size=(count // 10, inputs.shape[1]), dtype=np.int8)
    inputs[0], inputs[1] = -128, 127
    return inputs


@pytest.mark.parametrize("which,count", [("project", 300), ("design", 300),
                                         pytest.param("project", FULL_GRAPH_INPUTS, marks=pytest.mark.slow)])
def test_ds_cnn_matches_tflite_micro(which, count, ds_cnn_models):
    data = ds_cnn_models[which]
    opcodes = [op.opcode for op in read_tflite(data).operators]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(opcodes)
    inputs = full_graph_inputs(PROJECT_DS_CNN["seed"], count)
    ours, expected = run_generated_and_tflm(data, inputs)
    mismatches = int(np.count_nonzero(ours != expected))
    distinct = len(np.unique(expected, axis=0))
    print(f"{which} DS-CNN: {count} inputs, {ours.size} output values, {mismatches} differ; {distinct} distinct outputs")
    assert distinct > count // 2, "the model's outputs hardly depend on the input: the comparison would be weak"
    assert mismatches == 0


def test_ds_cnn_arena_is_not_larger_than_tflite_micro(ds_cnn_models):
    data = ds_cnn_models["project"]
    tflm = tflm_arena_report(data)
    ours = plan_model(data, "kws").arena_bytes
    ours_input_not_kept = plan_model(data, "kws", preserve_input=False).arena_bytes
    print(
        f"arena bytes: ours {ours} (input kept intact), {ours_input_not_kept} (input reusable); "
        f"TFLite Micro total {tflm['total']} = tensors {tflm['head']} + persistent {tflm['tail']}"
    )
    assert ours <= tflm["total"]
    assert ours_input_not_kept <= tflm["head"]  # our planner alone packs no worse than TFLM's


def test_ds_cnn_mac_count(ds_cnn_models):
    graph = read_tflite(ds_cnn_models["design"])
    c = DESIGN_DS_CNN["channels"]
    # conv 10x4x1 on 25x20, then 4 x (depthwise 3x3 + pointwise c x c) on 25x20, dense c x 12
    expected = 25 * 20 * c * 40 + 4 * (25 * 20 * c * 9 + 25 * 20 * c * c) + c * 12
    assert count_macs(graph) == expected
    header, _ = generate_model_c(ds_cnn_models["design"], "kws")
    assert f"#define TD_KWS_MACS {expected}" in header


def test_generated_api_and_files(ds_cnn_models, tmp_path):
    data = ds_cnn_models["project"]
    header_path, source_path = write_model_c(data, "kws", tmp_path)
    header, source = header_path.read_text(), source_path.read_text()
    graph = read_tflite(data)
    inp, out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    assert "#define TD_KWS_INPUT_SIZE 1960" in header
    assert "#define TD_KWS_OUTPUT_SIZE 12" in header
    assert f"#define TD_KWS_INPUT_ZERO_POINT ({inp.quantization.zero_point})" in header
    assert "#define TD_KWS_OUTPUT_ZERO_POINT (-128)" in header
    assert "#define TD_KWS_OUTPUT_SCALE 0.00390625f" in header
    for declaration in ("int8_t *td_kws_input(void);", "const int8_t *td_kws_output(void);", "int td_kws_invoke(void);"):
        assert declaration in header
    arena = plan_model(data, "kws").arena_bytes
    assert f"static int8_t arena[{arena}] __attribute__((aligned(16)));" in source
    assert source.count("static int8_t arena") == 1
    # one call per op, two where the optimized build calls a kernel with its own weight layout
    alternatives = source.count("#if TD_KERNELS_OPTIMIZED\n    td_")
    assert alternatives == 5  # the first and the pointwise convolutions: td_conv_widened_s8_m4 or td_conv_s8
    assert source.count("(&op") == len(graph.operators) - sum(op.opcode == "RESHAPE" for op in graph.operators) \
        + alternatives
    assert float(header.split("TD_KWS_INPUT_SCALE ")[1].split("f")[0]) == pytest.approx(inp.quantization.scale)
    assert np.float32(float(header.split("TD_KWS_OUTPUT_SCALE ")[1].split("f")[0])) == np.float32(out.quantization.scale)


def test_input_is_kept_through_invoke(ds_cnn_models):
    """The drift monitor reads the features after inference: the input must survive it."""
    import ctypes

    host = build_host_models({"kept": ds_cnn_models["project"]})["kept"]
    library = host.library
    library.td_kept_input.restype = ctypes.POINTER(ctypes.c_int8)
    library.td_kept_invoke.restype = ctypes.c_int
    features = structured_int8_inputs(5, 1, (49, 40, 1)).reshape(-1)
    ctypes.memmove(library.td_kept_input(), features.ctypes.data, features.size)
    assert library.td_kept_invoke() == 0
    after = np.ctypeslib.as_array(library.td_kept_input(), shape=(features.size,)).copy()
    assert np.array_equal(after, features)


def test_two_models_coexist_in_one_library(ds_cnn_models):
    hosts = build_host_models({"first": ds_cnn_models["project"], "second": ds_cnn_models["design"]})
    inputs = full_graph_inputs(3, 20)
    first, second = hosts["first"].run(inputs), hosts["second"].run(inputs)
    assert np.array_equal(first, run_tflm(ds_cnn_models["project"], inputs))
    assert np.array_equal(second, run_tflm(ds_cnn_models["design"], inputs))


# --- refusals ------------------------------------------------------------------------------

FLOAT_CONV = dict(kind="conv", seed=8000, input_shape=[6, 6, 2], filters=3, kernel=[3, 3], strides=[1, 1],
                  dilation=[1, 1], padding="same", activation="relu", use_bias=True, float=True)
TANH_DENSE = dict(kind="tanh", seed=8001, input_shape=[4, 4, 2], units=5)


def test_float_model_is_refused_naming_the_op():
    with pytest.raises(TinydriftError) as error:
        generate_model_c(tflite_model(FLOAT_CONV), "float_model")
    message = str(error.value)
    assert "op 0 CONV_2D" in message and "float32" in message and "int8" in message


def test_unsupported_op_is_refused_naming_it():
    data = tflite_model(TANH_DENSE)
    graph = read_tflite(data)
    tanh = [op for op in graph.operators if op.opcode == "TANH"]
    fused = [op for op in graph.operators if op.options.get("fused_activation_function") == "TANH"]
    assert tanh or fused, f"the converter produced {[op.opcode for op in graph.operators]}"
    with pytest.raises(TinydriftError) as error:
        generate_model_c(data, "tanh_model")
    message = str(error.value)
    assert "TANH" in message
    op = (tanh or fused)[0]
    assert f"op {op.index} {op.opcode}" in message and graph.tensors[op.outputs[0]].name in message


def test_int16_activations_are_refused_naming_the_op():
    int16_conv = {**FLOAT_CONV, "seed": 8002, "float": False, "int16": True}
    with pytest.raises(TinydriftError) as error:
        generate_model_c(tflite_model(int16_conv), "int16_model")
    assert "op 0 CONV_2D" in str(error.value) and "int16" in str(error.value)


def test_unsupported_fused_activation_is_refused_naming_it(ds_cnn_models):
    from tinydrift.codegen.model_lowering import lower

    graph = read_tflite(ds_cnn_models["design"])
    graph.operators[1].options["fused_activation_function"] = "RELU_N1_TO_1"
    with pytest.raises(TinydriftError, match=r"op 1 DEPTHWISE_CONV_2D .*fused activation RELU_N1_TO_1"):
        lower(graph)


def test_bad_inputs_are_refused():
    with pytest.raises(TinydriftError, match="not a TFLite model"):
        generate_model_c(b"definitely not a flatbuffer", "x")
    with pytest.raises(TinydriftError, match="not usable in C identifiers"):
        generate_model_c(tflite_model(TANH_DENSE), "Bad-Name")


# --- builds -------------------------------------------------------------------------------


@pytest.mark.slow  # 15 s of ASan/UBSan build; the app host tests run sanitized in the default tier
def test_sanitized_standalone_executable(ds_cnn_models):
    """AddressSanitizer and UBSan over the generated C and every kernel the DS-CNN uses,
    plus ADD with broadcasting (a separate model)."""
    add_broadcast = dict(kind="add", seed=6004, variant="constant", input_shape=[4, 4, 5], activation="none", weight_scale=2.0)
    for data, inputs in (
        (ds_cnn_models["design"], full_graph_inputs(11, 12)),
        (tflite_model(add_broadcast), np.random.default_rng(1).integers(-128, 128, (50, 80), dtype=np.int8)),
    ):
        executable = build_model_executable(data, sanitize=True)
        outputs = run_model_executable(executable, data, inputs)
        assert np.array_equal(outputs, run_tflm(data, inputs))


def test_model_c_command_writes_the_project_model_s_c_and_checks_it_against_tflite_micro(tmp_path):
    """The project's model through `tinydrift model-c`: the very C the firmware builds (export
    wrote models/kws/include with the same generator), its arena as the model card states,
    and --check compiles it for this host and runs it beside TFLite Micro."""
    model_dir = REPO_ROOT / "models" / "kws"
    ref = json.loads((model_dir / "reference.json").read_text())
    result = CliRunner().invoke(main, ["model-c", str(model_dir / "model_int8.tflite"), "--out", str(tmp_path),
                                       "--check", "3"])
    assert result.exit_code == 0, result.output
    for name in ("td_model_kws.h", "td_model_kws.c"):
        assert (tmp_path / name).read_text() == (model_dir / "include" / name).read_text(), name
    assert f"#define TD_KWS_ARENA_BYTES {ref['arena_bytes']}" in (tmp_path / "td_model_kws.h").read_text()
    assert f"arena: {ref['arena_bytes']:,} bytes; TFLite Micro {ref['tflm_arena']['total']:,}" in result.output
    assert "check: 3 random inputs, 0 of 36 output values differ" in result.output


ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-std=c99",
             "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes", "-Wconversion", "-Wsign-conversion",
             "-Wpedantic", "-Wcast-align", "-Wdouble-promotion", "-Wmissing-prototypes"]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_kernels_and_generated_model_build_for_cortex_m4(ds_cnn_models, tmp_path):
    header_path, source_path = write_model_c(ds_cnn_models["project"], "kws", tmp_path)
    for source in [*firmware.stage_sources("kernels"), source_path]:
        cmd = ["arm-none-eabi-gcc", *ARM_FLAGS, *[f"-I{d}" for d in firmware.include_dirs()], f"-I{tmp_path}",
               "-c", str(source), "-o", str(tmp_path / (source.stem + ".o"))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{source.name}:\n{proc.stderr}"


# --- the generator's parts ----------------------------------------------------------------


@pytest.mark.parametrize(
    "real,expected",
    [
        (0.0, (0, 0)),
        (0.5, (1 << 30, 0)),
        (1.0, (1 << 30, 1)),
        (0.75, (3 << 29, 0)),
        (2.0**-40, (0, 0)),  # below 2^-31: flushed to zero as TFLite does
        ((2**31 - 0.5) / 2**32, (1 << 30, 0)),  # rounds up to 2^31: halved, shift + 1
        (0.1, (1717986918, -3)),
    ],
)
def test_quantize_multiplier(real, expected):
    assert q.quantize_multiplier(real) == expected


def test_round_half_away_from_zero():
    assert [q.round_half_away(v) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 0.49999999999999994, 2.4)] == [1, 2, 3, -1, -3, 0, 2]


def test_activation_ranges():
    assert q.activation_range("NONE", 0.1, 3) == (-128, 127)
    assert q.activation_range("RELU", 0.1, -128) == (-128, 127)
    assert q.activation_range("RELU", 0.05, -20) == (-20, 127)
    assert q.activation_range("RELU6", 6.0 / 255, -128) == (-128, 127)
    assert q.activation_range("RELU6", 0.1, -100) == (-100, -40)


def test_arena_plan_never_overlaps_live_buffers():
    rng = np.random.default_rng(0)
    for trial in range(200):
        buffers = []
        for key in range(int(rng.integers(1, 25))):
            first = int(rng.integers(0, 20))
            buffers.append(Buffer(key, int(rng.integers(1, 5000)), first, first + int(rng.integers(0, 6))))
        offsets, size = plan_arena(buffers)
        check_plan(buffers, offsets)
        assert all(offset % 16 == 0 for offset in offsets.values())
        assert size >= max(sum(b.size for b in buffers if b.first <= step <= b.last) for step in range(26))
        assert size <= sum((b.size + 15) // 16 * 16 for b in buffers)


def test_arena_plan_reuses_memory_of_dead_tensors():
    chain = [Buffer(i, 1024, i, i + 1) for i in range(6)]  # each tensor read by the next op only
    offsets, size = plan_arena(chain)
    assert size == 2048
    assert len(set(offsets.values())) == 2


def test_reader_sees_per_channel_quantization_and_options(ds_cnn_models):
    graph = read_tflite(ds_cnn_models["project"])
    conv = graph.operators[0]
    assert conv.opcode == "CONV_2D"
    assert conv.options["padding"] == "SAME" and conv.options["stride_h"] == 2 and conv.options["stride_w"] == 2
    assert conv.options["fused_activation_function"] == "RELU"
    weights = graph.tensors[conv.inputs[1]]
    assert weights.shape == (64, 10, 4, 1) and weights.dtype == "int8" and weights.data.shape == (64, 10, 4, 1)
    assert weights.quantization.per_channel and len(weights.quantization.scales) == 64
    bias = graph.tensors[conv.inputs[2]]
    assert bias.dtype == "int32" and bias.data.shape == (64,)
    softmax = graph.operators[-1]
    assert softmax.opcode == "SOFTMAX" and softmax.options["beta"] == 1.0


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_labels_reach_the_device_as_their_bytes_whatever_they_hold(tmp_path):
    """A wake word or class folder holding a quote, a backslash or a line break was written
    into td_NAME_labels as it was: export succeeded and the firmware's build failed."""
    from tinydrift.codegen.reference_header import reference_header

    labels = ['Hey "quoted" */ \\ \n evil', "Hé Järvis – Привет", "x\t7", "plain"]
    (tmp_path / "td_reference_odd.h").write_text(reference_header("odd", "ab" * 32, labels, 49, 40))
    (tmp_path / "main.c").write_text('#include <stdio.h>\n#include "td_reference_odd.h"\n'
                                     "int main(void) { for (int i = 0; i < TD_ODD_NUM_CLASSES; ++i) "
                                     "{ fputs(td_odd_labels[i], stdout); putchar(0); } return 0; }\n")
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-o", str(tmp_path / "odd"), str(tmp_path / "main.c")],
                   check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "odd")], check=True, capture_output=True).stdout
    assert out.split(b"\0")[:-1] == [label.encode() for label in labels]
