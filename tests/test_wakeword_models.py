"""Real models no one here wrote: the microWakeWord streaming models that ESPHome voice
satellites run (pymicro-wakeword's alexa, hey_jarvis, hey_mycroft, okay_nabu), through the
C generator. Their state lives in resource variables set up by a CALL_ONCE init subgraph.

The generated C (built for this host) and TFLite Micro's Python interpreter run the same
input streams with the state carried from one invocation to the next and reset midway (the C
by td_<name>_reset(), TFLite Micro by a fresh interpreter); every output must be equal. The
inputs are espeak-ng speech (the wake words and other phrases, many voices and levels)
through pymicro-features' front end, with stretches of random int8 and the extremes.

A probability that stays at 0 (hey_jarvis never hears espeak-ng's "hey jarvis") would
prove little, so each model also runs as a copy whose output is the int8 logit before
LOGISTIC: that value moves with every input and carries the state's every error.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from helpers_wakeword import speech_inputs
from tinydrift.cli import main
from tinydrift.codegen.model_c import generate_model_c, plan_model
from tinydrift.codegen.tflite_graph import count_macs
from tinydrift.errors import TinydriftError
from tinydrift.model.runtimes import run_tflm, tflm_arena_report
from tinydrift.target.host_model import build_host_models
from tinydrift.wakeword.config import builtin_models, load_wakeword

QUICK_INVOCATIONS = 1000  # 30 s of audio a model: the default tier
FULL_INVOCATIONS = 10000  # 5 minutes of audio a model: the slow tier


pytest.importorskip("pymicro_wakeword", reason="the wakeword extra is not installed (scripts/setup.sh)")


@pytest.fixture(scope="module")
def models():
    return {name: load_wakeword(name) for name in sorted(builtin_models())}


def logit_variant(tflite: bytes) -> bytes:
    """The model with its FULLY_CONNECTED output (the int8 logit) as the output."""
    def edit(model, schema):
        main_graph = model.subgraphs[0]
        dense = next(op for op in main_graph.operators
                     if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.FULLY_CONNECTED)
        main_graph.outputs = [dense.outputs[0]]
    return _edited(tflite, edit)


@pytest.fixture(scope="module")
def logit_models(models):
    return {name: logit_variant(model.model) for name, model in models.items()}


@pytest.fixture(scope="module")
def hosts(models, logit_models):
    """The four models' generated C and their logit copies in one shared library."""
    return build_host_models({**{name: model.model for name, model in models.items()},
                              **{f"{name}_logit": data for name, data in logit_models.items()}})


QUICK_SEED = 14


def quick_stream(models, invocations: int) -> np.ndarray:
    """The first `invocations` of the default tier's stream (synthesized once)."""
    return stream(models, QUICK_INVOCATIONS, seed=QUICK_SEED)[:invocations]


def stream(models, invocations: int, seed: int) -> np.ndarray:
    """Speech features, a tenth of them replaced by random int8 stretches, and one input at
    each extreme: int8 [invocations, 3, 40]."""
    model = models["okay_nabu"]  # the four models' inputs are quantized alike (load_wakeword checks it)
    inputs = speech_inputs(invocations, seed, model.input_scale, model.input_zero_point)
    rng = np.random.default_rng(seed)
    for start in rng.choice(invocations - 50, size=invocations // 500, replace=False):
        inputs[start : start + 50] = rng.integers(-128, 128, size=(50, 3, 40), dtype=np.int8)
    inputs[invocations // 3] = -128
    inputs[invocations // 3 + 1] = 127
    return inputs


def compare_stream(tflite: bytes, host, inputs: np.ndarray, resets: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Both runtimes over `inputs`, starting afresh at 0 and at each index in `resets`."""
    bounds = [0, *resets, len(inputs)]
    ours, expected = [], []
    for start, end in zip(bounds, bounds[1:]):
        ours.append(host.run(inputs[start:end]))  # td_<name>_reset(), then the segment
        expected.append(run_tflm(tflite, inputs[start:end]))  # a fresh interpreter
    return np.concatenate(ours), np.concatenate(expected)


def check_models(models, logit_models, hosts, inputs: np.ndarray, resets: list[int]) -> None:
    report, detecting = [], 0
    for name, model in models.items():
        line = f"{name}:"
        for which, tflite, host, dtype in (("probability", model.model, hosts[name], np.uint8),
                                           ("logit", logit_models[name], hosts[f"{name}_logit"], np.int8)):
            ours, expected = compare_stream(tflite, host, inputs, resets)
            assert ours.dtype == expected.dtype == dtype and ours.shape == expected.shape == (len(inputs), 1)
            mismatches = np.flatnonzero(ours != expected)
            line += f" {which} {len(mismatches)} of {len(inputs)} differ ({len(np.unique(expected))} distinct values);"
            assert len(mismatches) == 0, f"{name} {which}: first mismatch at invocation {mismatches[0]}"
            if which == "logit":
                assert len(np.unique(expected)) >= 30, f"{name}: the stream hardly moves the logit: {line}"
            else:
                detections = int(np.count_nonzero(expected >= model.probability_cutoff * 256))
                detecting += detections > 0
                line += f" {detections} above the cutoff;"
        report.append(line)
    print("\n".join(report))
    assert detecting >= 1, "the speech should wake at least one model (the high end of the probability)"


def test_generated_c_equals_tflite_micro_on_streams_with_resets(models, logit_models, hosts):
    inputs = quick_stream(models, QUICK_INVOCATIONS)
    check_models(models, logit_models, hosts, inputs, resets=[400, 401, 777])


@pytest.mark.slow  # ~1 minute of espeak-ng the first time (cached in build/test_data), then seconds
def test_generated_c_equals_tflite_micro_on_ten_thousand_invocations(models, logit_models, hosts):
    inputs = stream(models, FULL_INVOCATIONS, seed=1414)
    check_models(models, logit_models, hosts, inputs, resets=[2500, 6000, 6001, 9999])


def test_state_carries_across_runs_and_reset_restarts_it(models, hosts):
    """Invocations split over several runs without a reset continue one stream; a reset
    then gives what a new stream gives."""
    model, host = models["okay_nabu"], hosts["okay_nabu"]
    inputs = quick_stream(models, 600)
    expected = run_tflm(model.model, inputs)
    pieces = [host.run(inputs[:250])] + [host.run(inputs[a:b], reset=False) for a, b in ((250, 251), (251, 600))]
    assert np.array_equal(np.concatenate(pieces), expected)
    assert len(np.unique(expected)) >= 3
    # Without the reset, the state left by the stream above changes what the next one gives.
    assert not np.array_equal(host.run(inputs[250:600], reset=False), run_tflm(model.model, inputs[250:600]))
    assert np.array_equal(host.run(inputs[250:600]), run_tflm(model.model, inputs[250:600]))


def test_arena_and_state_fit_in_the_models_own_arena(models):
    """What the generated model holds in RAM (arena + state) against the tensor arena each
    model's config asks TFLite Micro for, and TFLite Micro's measured use."""
    lines = []
    for name, model in models.items():
        plan = plan_model(model.model, name)
        tflm = tflm_arena_report(model.model)
        ours = plan.arena_bytes + plan.state_bytes
        lines.append(f"{name}: arena {plan.arena_bytes} + state {plan.state_bytes} = {ours} bytes; config "
                     f"{model.tensor_arena_size}, TFLite Micro {tflm['total']}; {plan.macs} MACs per invocation")
        assert plan.state is not None and len(plan.state.variables) >= 5
        assert ours <= min(model.tensor_arena_size, tflm["total"])
        assert plan.macs == count_macs(model.model) > 0
        header, _ = generate_model_c(model.model, name)
        upper = name.upper()
        for text in (f"#define TD_{upper}_STATE_BYTES {plan.state_bytes}", f"void td_{name}_reset(void);",
                     f"const uint8_t *td_{name}_output(void);", f"#define TD_{upper}_ARENA_BYTES {plan.arena_bytes}"):
            assert text in header
    print("\n".join(lines))


# --- model structures the engine refuses, in one line ------------------------------------


def _edited(tflite: bytes, edit) -> bytes:
    """The model with `edit(model_object)` applied, packed again."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite, 0))
    edit(model, schema)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _replace_op(opcode: str, replacement: str):
    def edit(model, schema):
        for code in model.operatorCodes:
            if max(code.builtinCode, code.deprecatedBuiltinCode) == getattr(schema.BuiltinOperator, opcode):
                code.builtinCode = getattr(schema.BuiltinOperator, replacement)
                code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    return edit


def _drop_call_once(model, schema):
    main_graph = model.subgraphs[0]
    main_graph.operators = [
        op for op in main_graph.operators
        if max(model.operatorCodes[op.opcodeIndex].builtinCode, model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
        != schema.BuiltinOperator.CALL_ONCE
    ]


def _computed_initial_value(model, schema):
    """The init subgraph assigns a variable the value another variable holds."""
    init = model.subgraphs[1]
    read = schema.OperatorT()
    read.opcodeIndex = next(i for i, c in enumerate(model.operatorCodes)
                            if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.READ_VARIABLE)
    read.inputs, read.outputs = [init.operators[0].outputs[0]], [init.operators[1].inputs[1]]
    init.operators.insert(1, read)


@pytest.mark.parametrize("edit, named", [
    (_replace_op("LOGISTIC", "TANH"), "TANH"),
    (_replace_op("CALL_ONCE", "IF"), "op 0 IF: control flow is not supported"),
    (_drop_call_once, "not run by a CALL_ONCE"),
    (_computed_initial_value, "READ_VARIABLE"),
], ids=["unsupported-op", "control-flow", "orphan-subgraph", "computed-initial-value"])
def test_structures_the_engine_lacks_are_refused_in_one_line(models, tmp_path, edit, named):
    bad = tmp_path / "bad_wakeword.tflite"
    bad.write_bytes(_edited(models["okay_nabu"].model, edit))
    with pytest.raises(TinydriftError, match=named):
        plan_model(bad.read_bytes(), "bad", source=str(bad))
    out = tmp_path / "c_out"
    result = CliRunner().invoke(main, ["model-c", str(bad), "--name", "bad", "--out", str(out)])
    assert result.exit_code != 0 and (result.exception is None or isinstance(result.exception, SystemExit)), (
        f"traceback: {result.exception!r}\n{result.output}")
    errors = [line for line in result.output.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1 and named in errors[0] and "bad_wakeword.tflite" in errors[0], result.output
    assert not out.exists() or not any(out.iterdir()), "the command wrote C for a model it refused"


# --- builds -------------------------------------------------------------------------------


@pytest.mark.slow  # 15 s of ASan/UBSan build; the same C runs unsanitized against TFLite Micro in the default tier
def test_sanitized_standalone_executable_streams_like_tflite_micro(models):
    """AddressSanitizer and UBSan over okay_nabu's generated C and the kernels it calls (every
    new one: CONCATENATION, SPLIT_V, STRIDED_SLICE, LOGISTIC, QUANTIZE, and the state)."""
    from tinydrift.target.host_model import build_model_executable, run_model_executable

    model = models["okay_nabu"]
    inputs = quick_stream(models, 300)
    executable = build_model_executable(model.model, sanitize=True)
    assert np.array_equal(run_model_executable(executable, model.model, inputs), run_tflm(model.model, inputs))


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_streaming_model_builds_for_cortex_m4_without_warnings(models, tmp_path):
    from test_model_codegen import ARM_FLAGS

    from tinydrift import firmware
    from tinydrift.codegen.model_c import write_model_c

    _, source_path = write_model_c(models["okay_nabu"].model, "okay_nabu", tmp_path)
    cmd = ["arm-none-eabi-gcc", *ARM_FLAGS, *[f"-I{d}" for d in firmware.include_dirs()], f"-I{tmp_path}",
           "-c", str(source_path), "-o", str(tmp_path / "model.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


QEMU_INVOCATIONS = 300  # 9 s of audio


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="the Cortex-M4 toolchain or QEMU is not installed")
# The reference kernels in QEMU go to the slow tier (~13 s on 2 loaded cores): the default
# tier runs the optimized ones there, and the reference ones on the host build.
@pytest.mark.parametrize("optimized", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["optimized", "reference"])
def test_streaming_models_in_qemu_match_tflite_micro_and_cost(models, logit_models, optimized):
    """Each model's logit copy on the emulated Cortex-M4 (mps2-an386), one stream with its
    state carried: every output equals TFLite Micro's; instructions per invocation (30 ms of
    audio) counted under QEMU's -icount (instructions, not cycles)."""
    import re

    from tinydrift.target.bench import build_model_check

    from tinydrift.target import emulator

    inputs = quick_stream(models, QEMU_INVOCATIONS).reshape(QEMU_INVOCATIONS, -1)
    lines = []
    for name, data in logit_models.items():
        elf, _ = build_model_check(data, inputs, optimized=optimized)
        result = emulator.run(elf, icount_shift=0, timeout=120)
        text = result.output.decode(errors="replace")
        done = re.search(r"^td_model_check done cycles=(\d+)$", text, re.MULTILINE)
        assert result.exit_code == 0 and done, text[-1000:]
        rows = re.findall(r"^td_model_check (\d+) ([0-9a-f]+)$", text, re.MULTILINE)
        device = np.stack([np.frombuffer(bytes.fromhex(h), dtype=np.int8) for _, h in rows])
        expected = run_tflm(data, inputs)
        assert device.shape == expected.shape == (QEMU_INVOCATIONS, 1)
        assert np.array_equal(device, expected), f"{name}: {int(np.count_nonzero(device != expected))} outputs differ"
        instructions = emulator.instructions_from_cycles(int(done.group(1))) / QEMU_INVOCATIONS
        macs = plan_model(data, name).macs
        lines.append(f"{name}: {instructions:,.0f} instructions per invocation ({instructions / macs:.2f} per MAC)")
    print(("optimized" if optimized else "reference") + " kernels: " + "; ".join(lines))
