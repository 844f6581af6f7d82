"""Full-int8 conversion for TFLite Micro, and the checks a device model must pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinydrift.atomic import all_or_nothing, write_bytes
from tinydrift.errors import TinydriftError
from tinydrift.firmware import MODEL_OPS
from tinydrift.modeldir import ModelDir
from tinydrift.quiet import held_back
from tinydrift.data.imageset import CHANNELS, IMAGE_SIZE
from tinydrift.data.labels import LABELS
from tinydrift.frontend import NUM_CHANNELS, NUM_FRAMES
from tinydrift.model.train import as_model_input

INPUT_SHAPE = (1, NUM_FRAMES, NUM_CHANNELS, 1)
IMAGE_INPUT_SHAPE = (1, IMAGE_SIZE, IMAGE_SIZE, CHANNELS)  # the plant model's (`tinydrift data plant`)
# A camera model's RGB image of any height and width in this range: the app's IMAGE frames
# and its shape check carry each side in one byte, and td_summarize_image's 3x3 grid needs
# blocks of a few pixels at least.
IMAGE_SIDES = (8, 255)
AUDIO_INPUT = f"{INPUT_SHAPE} ({NUM_FRAMES} frames x {NUM_CHANNELS} channels of the front end, batch 1)"
IMAGE_INPUT = (f"(1, H, W, {CHANNELS}) (an RGB image, batch 1, {IMAGE_SIDES[0]} <= H, W <= {IMAGE_SIDES[1]}; "
               "the device feeds pixels minus 128)")


def is_image_input(shape: tuple) -> bool:
    """Whether a device model's input shape is a camera image (check_device_model has
    accepted it: otherwise it is the front end's features)."""
    return len(shape) == 4 and shape != INPUT_SHAPE and shape[3] == CHANNELS


def _input_problem(shape: tuple) -> str | None:
    """Why the device cannot feed an input of `shape`, or None: there is an input summary for
    the front end's 49x40 features and for RGB images, for nothing else."""
    if shape == INPUT_SHAPE:
        return None
    if len(shape) == 4 and shape[0] == 1 and shape[3] == CHANNELS:
        low, high = IMAGE_SIDES
        if all(low <= side <= high for side in shape[1:3]):
            return None
        return (f"input shape {shape}: an image of {shape[1]}x{shape[2]}, outside the {low}..{high} pixels a side "
                "the device's image summary and IMAGE frames handle; resize the model's input")
    colours = (f"; {shape[3]} channel{'s' if shape[3] != 1 else ''} a pixel, not RGB (the image summary reads 3 "
               "colours)"
               if len(shape) == 4 and shape[3] != CHANNELS else "")
    return f"input shape {shape}, expected {AUDIO_INPUT} or {IMAGE_INPUT}{colours}: no input summary for any other"


# The ops the generated model C runs (tinydrift.firmware.MODEL_OPS): a classifier holds no
# streaming state, which only the wake-word app's models carry.
DEVICE_OPS = frozenset(MODEL_OPS)


def representative_inputs(features_int8: np.ndarray, count: int = 500, seed: int = 0) -> np.ndarray:
    """Calibration inputs: in-domain features (or pixels minus 128), with the int8 extremes
    planted once each.

    The two planted elements make the input's observed range exactly [-128, 127], so the
    converter picks input scale 1 and zero point 0: the device's int8 features are then the
    model's input tensor unchanged. One element in 1,960 barely moves any layer's range.
    """
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(features_int8), size=min(count, len(features_int8)), replace=False)
    x = as_model_input(features_int8[pick])
    x[0, 0, 0, 0] = 127.0
    x[-1, 0, 0, 0] = -128.0
    return x


def convert_int8(model, representative: np.ndarray) -> bytes:
    """Convert a Keras model to full int8 (int8 input and output) with a fixed batch of 1.

    A fixed batch keeps Flatten a RESHAPE: with a dynamic batch the converter emits
    SHAPE/STRIDED_SLICE/PACK ops that no device kernel runs.
    """
    import tensorflow as tf

    import keras

    fixed = keras.models.clone_model(model, input_tensors=keras.Input(batch_shape=(1, *model.input_shape[1:])))
    fixed.set_weights(model.get_weights())
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def samples():
        for x in representative:
            yield [x[None].astype(np.float32)]

    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with held_back():  # the saved-model tensor dump and the converter's settings
        return converter.convert()


def describe(model: bytes) -> dict:
    """Op names, input/output tensor details of a .tflite, read with LiteRT's interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    with held_back():
        interp = Interpreter(model_content=model)
    details = interp._get_ops_details()
    ops = sorted({d["op_name"] for d in details})
    inp, out = interp.get_input_details(), interp.get_output_details()
    return {"ops": ops, "inputs": inp, "outputs": out, "output_op": _output_op(details, out)}


# Ops that pass a softmax's probabilities on unchanged (in order and scale) to the output.
_PASS_THROUGH = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE"}


def _output_op(details: list, outputs: list) -> str | None:
    """The op that computes the one output, looking back through reshapes: SOFTMAX for a
    classifier the monitor can read (None: no op writes it)."""
    if len(outputs) != 1:
        return None
    producer = {int(t): d for d in details for t in d["outputs"]}
    tensor, seen = int(outputs[0]["index"]), set()
    while tensor in producer and tensor not in seen:
        seen.add(tensor)
        op = producer[tensor]
        if op["op_name"] not in _PASS_THROUGH or not len(op["inputs"]):
            return op["op_name"]
        tensor = int(op["inputs"][0])
    return None


def input_shape(model: bytes) -> tuple[int, ...]:
    """The shape of a .tflite's one input, batch first."""
    return tuple(int(d) for d in describe(model)["inputs"][0]["shape"])


def check_device_model(model: bytes, path: Path | str, num_classes: int | None = None) -> dict:
    """Refuse, with a one-line reason naming `path`, a model the device cannot run as is."""
    if not model:
        raise TinydriftError(f"{path}: the file is empty; give the full-int8 .tflite the converter wrote")
    try:
        info = describe(model)
    except (ValueError, RuntimeError) as e:
        raise TinydriftError(f"{path}: not a valid .tflite model ({e})") from e
    if len(info["inputs"]) != 1 or len(info["outputs"]) != 1:
        raise TinydriftError(f"{path}: the device runs models with one input and one output")
    inp, out = info["inputs"][0], info["outputs"][0]
    # A streaming detector keeps its state in resource variables and answers with one uint8
    # sigmoid: its uint8 output was refused first, with advice to convert it to int8.
    if {"VAR_HANDLE", "CALL_ONCE"} & set(info["ops"]) or (out["dtype"] == np.uint8 and out["shape"][-1] == 1):
        raise TinydriftError(f"{path}: a streaming wake-word detector (microWakeWord: state kept between calls, one "
                             "uint8 probability), not a classifier: `tinydrift wakeword check|export|calibrate` run it "
                             "(`tinydrift wakeword --help`)")
    for role, t in (("input", inp), ("output", out)):
        if t["dtype"] != np.int8:
            raise TinydriftError(f"{path}: {role} is {np.dtype(t['dtype']).name}, not int8; convert it to full int8 "
                                 "(the TFLite converter with a representative dataset and int8 input and output "
                                 "types; a model trained here: `tinydrift quantize`)")
    shape = tuple(int(d) for d in inp["shape"])
    problem = _input_problem(shape)
    if problem:
        raise TinydriftError(f"{path}: {problem}")
    # Any input quantization: the device's int8 features, or pixels minus 128, go into the
    # input tensor unchanged, which is what a model converted from training data spanning its
    # input range expects (the converter maps that range onto -128..127).
    unsupported = sorted(set(info["ops"]) - DEVICE_OPS)
    if unsupported:
        # Keras' GlobalAveragePooling2D converts to MEAN: the commonest head, with an equivalent the device runs
        hint = (" (MEAN is Keras' GlobalAveragePooling2D: AveragePooling2D over the whole feature map, then "
                "Flatten, computes the same with ops the device runs)" if "MEAN" in unsupported else
                " (SHAPE and PACK come from a batch size left open: build the model with keras.Input(..., "
                "batch_size=1) before converting it)" if {"SHAPE", "PACK"} & set(unsupported) else "")
        raise TinydriftError(f"{path}: ops the device cannot run: {', '.join(unsupported)}{hint} "
                             f"(supported: {', '.join(sorted(DEVICE_OPS))})")
    out_scale, out_zp = out["quantization"]
    if out_scale != 1.0 / 256 or out_zp != -128:
        raise TinydriftError(f"{path}: output scale {out_scale:.4g} and zero point {out_zp}, not a softmax's "
                             "(1/256 and -128), which the drift monitor reads as probabilities: end the model with "
                             "a Softmax layer before converting it")
    if info["output_op"] != "SOFTMAX" and out["shape"][-1] >= 2:
        raise TinydriftError(f"{path}: the output comes from {info['output_op'] or 'no op'}, not a SOFTMAX: the drift "
                             "monitor reads the outputs as class probabilities that sum to 1, which independent "
                             "sigmoids do not: end the model with a Softmax layer before converting it")
    if out["shape"][-1] < 2:
        raise TinydriftError(f"{path}: one output; the drift monitor reads a probability per class and needs two "
                             "classes or more (a one-unit sigmoid: give it a two-class softmax instead; a wake-word "
                             "detector: `tinydrift wakeword --help`)")
    if num_classes is not None and out["shape"][-1] != num_classes:
        raise TinydriftError(f"{path}: {out['shape'][-1]} outputs, expected {num_classes} classes")
    return info


def quantize(model_dir: Path, features_int8: np.ndarray) -> Path:
    """Convert model_dir's float model to model_dir/model_int8.tflite and check it."""
    from tinydrift.model.train import load_float_model

    model = load_float_model(model_dir)
    tflite = convert_int8(model, representative_inputs(features_int8))
    path = ModelDir(model_dir).int8_model
    check_device_model(tflite, path)
    write_bytes(path, tflite)
    return path


def load_int8(model_dir_or_file: Path | str) -> tuple[bytes, Path]:
    path = Path(model_dir_or_file)
    if path.is_dir():
        folder = ModelDir(path)
        if folder.detector_json.is_file() and not folder.int8_model.exists():
            raise folder.not_a_classifier()
        path = folder.int8_model
    if not path.exists():
        raise TinydriftError(f"{path}: no int8 model; run `tinydrift quantize` first (a model trained elsewhere: "
                             "`tinydrift adopt MODEL.tflite --out FOLDER`)")
    model = path.read_bytes()
    check_device_model(model, path)
    return model, path


def adopt(tflite_path: Path | str, model_dir: Path | str, lowers=None, labels: list[str] | None = None) -> dict:
    """A model folder for a full-int8 classifier trained elsewhere: the .tflite checked as the
    device needs it (refused by name otherwise), copied in as the folder's int8 model, and
    training.json saying where it came from (`tinydrift export --data` then adds the rest).
    `lowers(model, path)`: a further check before anything is written (the command line
    passes the code generator's, which also refuses an op whose scales its C cannot take).
    `labels`: an image model's class names in its output order (default: its class folders'
    names, sorted), kept in training.json."""
    tflite_path, folder = Path(tflite_path), ModelDir(model_dir)
    if folder.float_model.exists():
        raise TinydriftError(f"{folder.path}: holds a model trained here ({folder.float_model.name}); "
                             "adopt into a new folder")
    exported = [path.name for path in (folder.reference_json, folder.detector_json) if path.exists()]
    if exported:
        # its reference, model card and headers describe the model already there
        same = folder.int8_model.is_file() and tflite_path.is_file() and \
            folder.int8_model.read_bytes() == tflite_path.read_bytes()
        if same:
            raise TinydriftError(f"{folder.path}: already holds this model, adopted and exported ({exported[0]}): "
                                 "nothing to adopt; export it again with `tinydrift export --model "
                                 f"{folder.path} --data FOLDER` to recalibrate its monitor")
        raise TinydriftError(f"{folder.path}: holds another model's export ({exported[0]}); adopt into a new folder")
    try:
        model = tflite_path.read_bytes()
    except OSError as exc:
        raise TinydriftError(f"{tflite_path}: cannot read it ({exc.strerror})") from None
    info = check_device_model(model, tflite_path)
    if lowers is not None:
        lowers(model, tflite_path)
    outputs = int(info["outputs"][0]["shape"][-1])
    if not is_image_input(tuple(int(d) for d in info["inputs"][0]["shape"])) and outputs != len(LABELS):
        # clip sets, WAV folders, the demo and the reports all label clips in this one convention
        raise TinydriftError(f"{tflite_path}: {outputs} outputs; a keyword model's outputs are the 12 classes "
                             f"tinydrift labels clips with, in this order: {', '.join(LABELS)} (train it on "
                             "`tinydrift data kws`, or give your classes those places)")
    if labels is not None and not is_image_input(tuple(int(d) for d in info["inputs"][0]["shape"])):
        raise TinydriftError(f"--labels names an image model's classes; {tflite_path.name} is a keyword model, whose "
                             f"outputs are these in this order: {', '.join(LABELS)}")
    if labels is not None and len(labels) != outputs:
        raise TinydriftError(f"--labels names {len(labels)} classes and {tflite_path.name} has {outputs} outputs: "
                             "give one name per output, in the model's output order")
    with all_or_nothing():  # the model and training.json, or neither (and no folder made for them)
        write_bytes(folder.int8_model, model)
        folder.write_training({"adopted_from": tflite_path.name, **({"labels": list(labels)} if labels else {})})
    return info
