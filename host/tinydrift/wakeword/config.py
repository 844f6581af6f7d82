"""A microWakeWord model and its JSON config, loaded and checked against each other.

A model is a .tflite file and a JSON file beside it (microWakeWord's "v2" config):

    {"type": "micro", "wake_word": "Okay Nabu", "model": "okay_nabu.tflite",
     "micro": {"probability_cutoff": 0.85, "feature_step_size": 10,
               "sliding_window_size": 5, "tensor_arena_size": 37000, ...}, ...}

`load_wakeword` takes the path of either file, or the name of a model the installed
pymicro-wakeword package ships (alexa, hey_jarvis, hey_mycroft, okay_nabu), found at run
time and never copied. Everything the device relies on is checked, each mismatch named in
one line: int8 input [1, 3, 40] quantized as the device's feature map assumes, uint8
output [1, 1], a 10 ms feature step, a cutoff in (0, 1], a sliding window of at least 1.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

from tinydrift.codegen.tflite_graph import Graph, Tensor, read_tflite
from tinydrift.errors import TinydriftError
from tinydrift.frontend import NUM_CHANNELS, WAKEWORD_STEP_MS

PACKAGE = "pymicro_wakeword"
STRIDE = 3  # feature frames per inference: the input's second dimension
MAX_SLIDING_WINDOW = 32  # td_app.h TD_APP_MAX_SLIDING_WINDOW: the probabilities the device app keeps
# The device maps front-end output v to int8 as ESPHome does, (256 v + 333) // 666 - 128
# (tinydrift.wakeword.stream), which stands for real v / 25.6 quantized with this scale and
# zero point: a model quantized otherwise would be fed wrong values.
INPUT_SCALE = 26 / 255
INPUT_ZERO_POINT = -128
INPUT_SCALE_TOLERANCE = 0.01  # relative; the four published models are within 1e-8


@dataclass(frozen=True)
class WakewordModel:
    """A checked microWakeWord model: what the device and the host twin need of it."""

    name: str  # the .tflite file's stem, e.g. "okay_nabu"
    wake_word: str  # the phrase, e.g. "Okay Nabu"
    model_path: Path
    config_path: Path
    model: bytes  # the .tflite file's contents
    probability_cutoff: float  # detection when the window's mean probability exceeds it
    sliding_window_size: int  # probabilities averaged
    feature_step_ms: int
    stride: int  # feature frames per inference
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    tensor_arena_size: int | None  # the config's figure for TFLite Micro, if it gives one
    trained_languages: tuple[str, ...]

    @property
    def probability_cutoff_u8(self) -> int:
        """The cutoff against uint8 probabilities, rounded down as ESPHome's micro_wake_word
        rounds it (int(cutoff * 255)): 0.85 -> 216."""
        return int(self.probability_cutoff * 255)


def builtin_models() -> dict[str, Path]:
    """Name -> JSON config of each model the installed pymicro-wakeword ships."""
    if importlib.util.find_spec(PACKAGE) is None:
        return {}
    folder = importlib.resources.files(PACKAGE) / "models"
    return {Path(entry.name).stem: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".json")}


def load_wakeword(source: str | Path, config: str | Path | None = None) -> WakewordModel:
    """The model named by `source`: a .tflite path (its JSON beside it with the same stem,
    unless `config` names it), a JSON config path (naming its .tflite), or the name of a
    model pymicro-wakeword ships."""
    if not str(source).strip():
        raise TinydriftError("an empty MODEL names nothing: give a .tflite path, its JSON config, or the name of a "
                             "model pymicro-wakeword ships (alexa, hey_jarvis, hey_mycroft, okay_nabu)")
    config_path = _config_path(source, config)
    data = _read_config(config_path)
    model_path = _model_path(source, config_path, data)
    try:
        model = model_path.read_bytes()
    except OSError as exc:
        raise TinydriftError(f"{model_path}: cannot read the model ({exc.strerror}); "
                             f"check the path or the \"model\" entry of {config_path}") from None
    graph = read_tflite(model, str(model_path))
    problems = _config_problems(data) + _model_problems(graph)
    if problems:
        raise TinydriftError(f"{config_path} and {model_path.name} do not make a microWakeWord model the "
                             f"device can run: {'; '.join(problems)}")
    micro = data["micro"]
    inputs, outputs = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    arena = micro.get("tensor_arena_size")
    return WakewordModel(
        name=model_path.stem,
        wake_word=data["wake_word"],
        model_path=model_path,
        config_path=config_path,
        model=model,
        probability_cutoff=float(micro["probability_cutoff"]),
        sliding_window_size=int(micro["sliding_window_size"]),
        feature_step_ms=int(micro["feature_step_size"]),
        stride=inputs.shape[1],
        input_scale=inputs.quantization.scale,
        input_zero_point=inputs.quantization.zero_point,
        output_scale=outputs.quantization.scale,
        output_zero_point=outputs.quantization.zero_point,
        tensor_arena_size=int(arena) if _is_int(arena) else None,
        trained_languages=tuple(str(x) for x in data.get("trained_languages", [])),
    )


# --- finding the files --------------------------------------------------------------------


def _config_path(source: str | Path, config: str | Path | None) -> Path:
    if config is not None:
        # a JSON MODEL is a config itself: another --config would silently take its place
        if Path(source).suffix == ".json" and Path(source).resolve() != Path(config).resolve():
            raise TinydriftError(f"{source} is a config itself and --config names another ({config}): give one "
                                 "of them (--config is for a .tflite whose config is not beside it)")
        return Path(config)
    path = Path(source)
    if path.suffix == ".json":
        return path
    if path.suffix == ".tflite":
        if not path.is_file():
            raise TinydriftError(f"{path}: no such model file; check the path")
        return path.with_suffix(".json")
    builtin = builtin_models()
    # a shipped model's name stays that model when a folder of the same name exists: the one
    # `tinydrift wakeword export okay_nabu --out okay_nabu` made, for one
    if str(source) in builtin and not path.is_file():
        return builtin[str(source)]
    if path.is_dir() and ((path / "detector.json").is_file() or (path / "monitor.json").is_file()):
        raise TinydriftError(f"{path} is a folder `tinydrift wakeword export` or `calibrate` wrote, not a model: give the "
                             ".tflite model (or its .json config, or the name of one pymicro-wakeword ships) it was "
                             "made from")
    if path.exists():
        raise TinydriftError(f"{path}: give a .tflite model or its .json config")
    if not builtin:
        raise TinydriftError(f"{source}: no such file, and pymicro-wakeword is not installed to look it up "
                             "as a model name; give a .tflite path, or run scripts/setup.sh (the wakeword extra)")
    alike = [name for name in builtin if name.lower() == str(source).lower().replace("-", "_").replace(" ", "_")]
    if alike:
        raise TinydriftError(f"{source}: no such file; the model pymicro-wakeword ships is named {alike[0]}")
    raise TinydriftError(f"{source}: no such file nor a model pymicro-wakeword ships; "
                         f"give a .tflite path or one of {', '.join(sorted(builtin))}")


def _read_config(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TinydriftError(f"{path}: no such file; a microWakeWord model needs its JSON config beside "
                             "the .tflite, with the same name (the `tinydrift wakeword` commands can name another "
                             "with --config)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TinydriftError(f"{path}: cannot read the config ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TinydriftError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("micro"), dict):
        what = ("its top level is not an object" if not isinstance(data, dict) else
                "no \"micro\" section" if "micro" not in data else
                f"its \"micro\" section is {_json_kind(data['micro'])}, not an object")
        raise TinydriftError(f"{path}: not a microWakeWord config ({what}); give the JSON that came with the model")
    return data


def _model_path(source: str | Path, config_path: Path, data: dict) -> Path:
    name = data.get("model")
    if Path(source).suffix == ".tflite":
        # a config written for another model would give this one its cutoff, window and arena
        if isinstance(name, str) and name and Path(name).name != Path(source).name:
            raise TinydriftError(f"{config_path} is the config of {name} (its \"model\" entry), not of "
                                 f"{Path(source).name}: give the config made for this model (or none: the .json "
                                 f"beside it); if you renamed the model, set \"model\" to \"{Path(source).name}\"")
        return Path(source)
    if not isinstance(name, str) or not name:
        raise TinydriftError(f"{config_path}: no \"model\" entry naming the .tflite file")
    if Path(source).suffix != ".json" and Path(source).name != Path(name).stem and not Path(source).exists():
        raise TinydriftError(f"{config_path} is the config of {name}, not of the model {source}: give its own "
                             "config, or none")
    return config_path.parent / name


# --- checks ----------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json_kind(value) -> str:
    return {bool: "a boolean", list: "a list", str: "a string", type(None): "null"}.get(type(value), "a number")


def _shown(micro: dict, key: str) -> str:
    """How a micro entry reads in a problem: its value as JSON writes it, or that it is missing."""
    return f"micro.{key} is {json.dumps(micro[key])}" if key in micro else f"micro.{key} is missing"


def _config_problems(data: dict) -> list[str]:
    micro = data["micro"]
    problems = []
    if data.get("type", "micro") != "micro":
        problems.append(f"type is {json.dumps(data['type'])}, not \"micro\"")
    if not isinstance(data.get("wake_word"), str):
        problems.append("no \"wake_word\" phrase")
    step = micro.get("feature_step_size")
    if step != WAKEWORD_STEP_MS:
        problems.append(f"{_shown(micro, 'feature_step_size')}; the wake-word front end steps "
                        f"{WAKEWORD_STEP_MS} ms")
    cutoff = micro.get("probability_cutoff")
    if not (_is_number(cutoff) and 0 < cutoff <= 1):
        problems.append(f"{_shown(micro, 'probability_cutoff')}; it must be in (0, 1]")
    window = micro.get("sliding_window_size")
    if not (_is_int(window) and 1 <= window <= MAX_SLIDING_WINDOW):
        problems.append(f"{_shown(micro, 'sliding_window_size')}; it must be a whole number from 1 to "
                        f"{MAX_SLIDING_WINDOW} (the device app's window holds {MAX_SLIDING_WINDOW} probabilities)")
    arena = micro.get("tensor_arena_size")
    if arena is not None and not (_is_int(arena) and arena > 0):
        problems.append(f"{_shown(micro, 'tensor_arena_size')}; it must be a whole number of bytes > 0")
    return problems


def _describe(tensor: Tensor) -> str:
    return f"{tensor.dtype} {list(tensor.shape)}"


def _model_problems(graph: Graph) -> list[str]:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return [f"the model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
                "a microWakeWord model has one of each"]
    problems = []
    inputs, outputs = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    if (inputs.dtype, inputs.shape) != ("int8", (1, STRIDE, NUM_CHANNELS)):
        problems.append(f"input is {_describe(inputs)}; the device feeds int8 [1, {STRIDE}, {NUM_CHANNELS}]")
    elif inputs.quantization is None or inputs.quantization.per_channel:
        problems.append("input has no per-tensor quantization")
    else:
        q = inputs.quantization
        if q.zero_point != INPUT_ZERO_POINT or abs(q.scale / INPUT_SCALE - 1) > INPUT_SCALE_TOLERANCE:
            problems.append(f"input is quantized with scale {q.scale:.6g}, zero point {q.zero_point}; the "
                            f"device's feature map assumes scale 26/255 = {INPUT_SCALE:.6g}, zero point "
                            f"{INPUT_ZERO_POINT}")
    if (outputs.dtype, outputs.shape) != ("uint8", (1, 1)):
        problems.append(f"output is {_describe(outputs)}; a microWakeWord model gives uint8 [1, 1]")
    elif outputs.quantization is None:
        problems.append("output has no quantization")
    return problems
