"""Kernels that run in place (the output over the bytes of the input it reads last) and
the arena planner that places them, against TFLite Micro:

- single-op models of every kernel with an aliasing contract (model_lowering.InPlace),
  generated with the input not kept so the planner may overlay it, equal TFLite Micro's
  outputs bit for bit with the reference kernels and with the optimized kernels;
- the contract's lead is tight: one step less and the outputs differ;
- the planner: tied buffers are placed as one block, a tie is kept only where it shrinks
  the arena, and the project's models reach the bound their operator order allows.
"""

from __future__ import annotations

from dataclasses import replace
import numpy as np
import pytest

from helpers_tflite import tflite_models
from test_kernels import CASES, random_inputs
from tinydrift.codegen import model_c
from tinydrift.codegen.model_arena import Buffer, check_plan, peak_live_bytes, plan_arena
from tinydrift.codegen.model_c import plan_model
from tinydrift.firmware import REPO_ROOT
from tinydrift.model.runtimes import tflm_arena_bytes
from tinydrift.target.host_model import build_host_models, run_tflm

IN_PLACE_KINDS = {"conv", "depthwise", "avg_pool", "max_pool", "softmax", "add", "logistic", "slice"}
INPUTS = 200


def _conv(seed, shape, filters, kernel, strides, padding, dilation=(1, 1)):
    return dict(kind="conv", seed=seed, input_shape=list(shape), filters=filters, kernel=list(kernel),
                strides=list(strides), dilation=list(dilation), groups=1, padding=padding, activation="relu",
                use_bias=True, per_channel=True, input_range=(-1.0, 1.0))


def _depthwise(seed, shape, kernel, strides, padding, dilation=(1, 1)):
    return dict(kind="depthwise", seed=seed, input_shape=list(shape), kernel=list(kernel), strides=list(strides),
                dilation=list(dilation), depth_multiplier=1, padding=padding, activation="relu6", use_bias=True,
                per_channel=True, input_range=(-6.0, 0.5))


# Shapes where running in place matters: a DS-CNN's layers (3x3 stride 1 and 2, pointwise
# growing and shrinking the depth), 70 channels (two channel chunks of the M4 kernel and two
# left over), 3 channels (no group of four), dilation.
IN_PLACE_SPECS = [
    ("dw_3x3_s1_70ch", _depthwise(7700, (7, 9, 70), (3, 3), (1, 1), "same")),
    ("dw_3x3_s1_16ch", _depthwise(7701, (8, 9, 16), (3, 3), (1, 1), "same")),
    ("dw_3x3_s2", _depthwise(7702, (11, 10, 16), (3, 3), (2, 2), "same")),
    ("dw_5x3_dilated", _depthwise(7703, (12, 8, 8), (5, 3), (1, 1), "valid", dilation=(2, 1))),
    ("dw_3x3_3ch", _depthwise(7704, (6, 5, 3), (3, 3), (1, 1), "same")),
    ("pw_16_to_32", _conv(7710, (8, 8, 16), 32, (1, 1), (1, 1), "valid")),
    ("pw_32_to_16", _conv(7711, (8, 8, 32), 16, (1, 1), (1, 1), "valid")),
    ("conv_3x3_s1", _conv(7712, (7, 6, 8), 8, (3, 3), (1, 1), "same")),
    ("conv_3x3_s2", _conv(7713, (9, 9, 4), 12, (3, 3), (2, 2), "same")),
]
KERNEL_CASES = [(case_id, spec) for case_id, spec in CASES if spec["kind"] in IN_PLACE_KINDS]


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    cases = KERNEL_CASES + IN_PLACE_SPECS
    return dict(zip([case_id for case_id, _ in cases], tflite_models([spec for _, spec in cases])))


@pytest.mark.parametrize("optimized", [pytest.param(False, marks=pytest.mark.slow), True], ids=["reference", "optimized"])
def test_kernels_in_place_match_tflite_micro(optimized, models):
    hosts = build_host_models(models, preserve_input=False, kernels_optimized=optimized)
    in_place, differing = [], []
    for case_id, data in models.items():
        plan = plan_model(data, case_id, preserve_input=False)
        if plan.overlays:
            in_place.append(case_id)
        inputs = random_inputs(len(case_id) * 7919 % 1000, INPUTS, hosts[case_id].input_size)
        if not np.array_equal(hosts[case_id].run(inputs), run_tflm(data, inputs)):
            differing.append(case_id)
    print(f"{len(in_place)} of {len(models)} models run their kernel in place: {', '.join(in_place)}")
    assert not differing, f"outputs differ from TFLite Micro: {differing}"
    assert {case_id for case_id, _ in IN_PLACE_SPECS} <= set(in_place)
    for kind in IN_PLACE_KINDS - {"add"}:  # the add cases read a second input the output cannot take
        assert any(case_id.startswith(kind) for case_id in in_place), f"no {kind} model ran in place"


def test_contiguous_slices_are_views_without_code(models):
    """slice_01 keeps rows 8-16 of a [17, 1, 32] input: bytes 256 on of it, a view (no copy),
    even of the kept model input; slice_00 steps over rows and stays a copy."""
    for preserve_input in (True, False):
        plan = plan_model(models["slice_01"], "slice_01", preserve_input=preserve_input)
        (view, source), = ((v, plan.overlays[v]) for v in plan.views)
        assert plan.offsets[view] - plan.offsets[source] == 256
        _, source_c = model_c.generate_model_c(models["slice_01"], "slice_01", preserve_input=preserve_input)
        assert "td_strided_slice_s8(" not in source_c.split("int td_slice_01_invoke")[1]
        assert "from byte 256: no code" in source_c
    assert not plan_model(models["slice_00"], "slice_00", preserve_input=False).views


@pytest.mark.parametrize("case_id", ["dw_3x3_s1_16ch", pytest.param("pw_16_to_32", marks=pytest.mark.slow)])
def test_one_step_less_lead_breaks_the_output(case_id, models, monkeypatch):
    """The contract's lead is the least that works: start the output one alignment step (16
    bytes: one pixel of the depthwise layer, a pixel's first channels for the pointwise one)
    closer to its input and the reference kernels overwrite values they have yet to read."""
    data = models[case_id]
    exact = plan_model(data, case_id, preserve_input=False)
    (output, source), = exact.overlays.items()
    assert exact.offsets[source] - exact.offsets[output] > 0

    candidates = model_c._in_place_candidates
    monkeypatch.setattr(model_c, "_in_place_candidates",
                        lambda *args: [replace(b, anchor_offset=b.anchor_offset + 16) for b in candidates(*args)])
    name = f"{case_id}_short_lead"
    short = plan_model(data, name, preserve_input=False)
    assert short.offsets[source] - short.offsets[output] == exact.offsets[source] - exact.offsets[output] - 16
    host = build_host_models({name: data}, preserve_input=False)[name]
    inputs = random_inputs(11, INPUTS, host.input_size)
    differing = np.any(host.run(inputs) != run_tflm(data, inputs), axis=1)
    print(f"{case_id}: 16 bytes less lead, {int(differing.sum())} of {INPUTS} outputs differ")
    assert differing.mean() > 0.5


@pytest.mark.slow  # 17 s; the single in-place kernels stay in the default tier
def test_ds_cnn_with_every_block_in_place_matches_tflite_micro():
    """MLPerf Tiny's keyword layout (a strided stem, then four stride-1 depthwise-separable
    blocks: the same peak at every block) runs all eight block kernels in place, chained,
    and stays bit-exact with TFLite Micro on 300 inputs with the optimized kernels
    (test_model_codegen runs the same model with the reference kernels)."""
    from test_model_codegen import DESIGN_DS_CNN, full_graph_inputs

    data = tflite_models([DESIGN_DS_CNN])[0]
    plan = plan_model(data, "design")
    opcodes = [plan.graph.operators[key_op].opcode for key_op in _producers(plan, plan.overlays)]
    assert opcodes.count("DEPTHWISE_CONV_2D") == 4 and opcodes.count("CONV_2D") == 4
    assert plan.arena_bytes <= 0.7 * tflm_arena_bytes(data)
    host = build_host_models({"design": data}, kernels_optimized=True)["design"]
    inputs = full_graph_inputs(8100, 300)
    ours, expected = host.run(inputs), run_tflm(data, inputs)
    assert len(np.unique(expected, axis=0)) > 150
    assert np.array_equal(ours, expected)


def _producers(plan, tensors) -> list[int]:
    """The operators that write the given root tensors."""
    return [op.index for op in plan.graph.operators if op.outputs and plan.root[op.outputs[0]] in tensors]


# --- the planner ----------------------------------------------------------------------------


def test_tied_buffers_move_as_one_block():
    """b overlays a at step 1 (starting 32 bytes before it); c lives beside both."""
    a = Buffer("a", 64, 0, 1)
    b = Buffer("b", 64, 1, 2, anchor="a", anchor_offset=-32)
    c = Buffer("c", 48, 0, 2)
    offsets, size = plan_arena([a, b, c], 16)
    assert offsets["a"] - offsets["b"] == 32
    assert size == 96 + 48  # the block's 96 bytes beside c, not 64 + 64 + 48
    assert peak_live_bytes([a, b, c]) == 144
    check_plan([a, b, c], offsets)
    with pytest.raises(AssertionError):  # untied, the same offsets collide
        check_plan([a, replace(b, anchor=None), c], offsets)


def _chain(lead: int) -> tuple[list[Buffer], list[Buffer]]:
    """A kept 48-byte buffer and six 96-byte buffers each overlaying the one before at the
    next step (a DS-CNN's blocks): every step is a peak of 48 + 96 + 96 bytes untied."""
    kept = Buffer("kept", 48, 0, 6)
    chain = [Buffer(i, 96, i, i + 1) for i in range(6)]
    ties = [replace(chain[i], anchor=i - 1, anchor_offset=-lead) for i in range(1, 6)]
    return [kept, *chain], ties


def test_a_peak_repeated_at_every_step_falls_when_every_step_runs_in_place():
    buffers, ties = _chain(16)
    _, untied = plan_arena(buffers, 16)
    chosen, offsets, size = model_c._plan_with_in_place(buffers, ties)
    assert untied == 48 + 96 + 96
    assert size == 48 + 5 * 16 + 96  # one block drifting 16 bytes a step, beside the kept buffer
    assert sum(b.anchor is not None for b in chosen) == 5
    check_plan(chosen, offsets)


def test_ties_whose_drift_would_grow_the_arena_are_left_out():
    buffers, ties = _chain(80)  # tied all along, the block would span 5 x 80 + 96 bytes
    _, untied = plan_arena(buffers, 16)
    chosen, offsets, size = model_c._plan_with_in_place(buffers, ties)
    assert size <= untied < 48 + 5 * 80 + 96
    check_plan(chosen, offsets)


def test_project_models_reach_their_bound_and_beat_tflite_micro():
    """models/kws and models/plant, input kept for the monitor: the arena is the most bytes
    alive at one operator (in-place pairs counted by their span), give or take the 16-byte
    alignment, and at most 0.7x (kws) and 0.8x (plant) TFLite Micro's arena for the model."""
    for name, ceiling in (("kws", 0.7), ("plant", 0.8)):
        data = (REPO_ROOT / "models" / name / "model_int8.tflite").read_bytes()
        plan = plan_model(data, name)
        bound = peak_live_bytes(plan.buffers)
        tflm = tflm_arena_bytes(data)
        print(f"{name}: arena {plan.arena_bytes} B, bound {bound} B, TFLite Micro {tflm} B "
              f"({plan.arena_bytes / tflm:.3f}x), {len(plan.overlays)} kernels in place")
        assert bound <= plan.arena_bytes < bound + 16
        assert plan.overlays
        assert plan.arena_bytes <= ceiling * tflm


def test_generated_c_says_which_kernel_runs_in_place():
    data = (REPO_ROOT / "models" / "kws" / "model_int8.tflite").read_bytes()
    _, source = model_c.generate_model_c(data, "kws")
    assert source.count("/* in place: the output overwrites") == len(plan_model(data, "kws").overlays) > 0
    assert "static int8_t arena[33968]" in source


def test_wake_word_state_windows_are_views():
    """microWakeWord's streaming layers keep the last rows of [state, new frame] as the next
    state: a contiguous slice, read in place, which takes alexa's arena from 2,752 to 1,536
    bytes (TFLite Micro: 20,432)."""
    from tinydrift.wakeword.config import builtin_models, load_wakeword

    if "alexa" not in builtin_models():
        pytest.skip("pymicro-wakeword is not installed")
    data = load_wakeword("alexa").model
    plan = plan_model(data, "alexa")
    assert plan.views and plan.arena_bytes == 1536
    assert plan.arena_bytes < peak_live_bytes([replace(b, anchor=None, anchor_offset=0, view=False)
                                               for b in plan.buffers])


def test_kept_input_is_never_overlaid():
    data = (REPO_ROOT / "models" / "kws" / "model_int8.tflite").read_bytes()
    plan = plan_model(data, "kws")
    model_input = plan.root[plan.graph.inputs[0]]
    assert model_input not in plan.overlays.values()
