"""Full-int8 conversion for TFLite Micro, and the checks a device model must pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinydrift.atomic import write_bytes
from tinydrift.errors import TinydriftError
from tinydrift.modeldir import ModelDir
from tinydrift.quiet import held_back
from tinydrift.data.imageset import CHANNELS, IMAGE_SIZE
from tinydrift.frontend import NUM_CHANNELS, NUM_FRAMES
from tinydrift.model.train import as_model_input

INPUT_SHAPE = (1, NUM_FRAMES, NUM_CHANNELS, 1)
IMAGE_INPUT_SHAPE = (1, IMAGE_SIZE, IMAGE_SIZE, CHANNELS)
# The inputs a device fills: its front end's features, or a camera frame (pixels minus 128).
DEVICE_INPUTS = {
    INPUT_SHAPE: f"{NUM_FRAMES} frames x {NUM_CHANNELS} channels, batch 1",
    IMAGE_INPUT_SHAPE: f"a {IMAGE_SIZE}x{IMAGE_SIZE} RGB image, batch 1",
}
# The ops the firmware's kernels implement (firmware/lib/tinydrift/src/kernels/).
DEVICE_OPS = {
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "RESHAPE", "SOFTMAX", "ADD",
}


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
    ops = sorted({d["op_name"] for d in interp._get_ops_details()})
    inp, out = interp.get_input_details(), interp.get_output_details()
    return {"ops": ops, "inputs": inp, "outputs": out}


def check_device_model(model: bytes, path: Path | str, num_classes: int | None = None) -> dict:
    """Refuse, with a one-line reason naming `path`, a model the device cannot run as is."""
    try:
        info = describe(model)
    except (ValueError, RuntimeError) as e:
        raise TinydriftError(f"{path}: not a valid .tflite model ({e})") from e
    if len(info["inputs"]) != 1 or len(info["outputs"]) != 1:
        raise TinydriftError(f"{path}: the device runs models with one input and one output")
    inp, out = info["inputs"][0], info["outputs"][0]
    for role, t in (("input", inp), ("output", out)):
        if t["dtype"] != np.int8:
            raise TinydriftError(f"{path}: {role} is {np.dtype(t['dtype']).name}, not int8; "
                                 "convert with `tinydrift quantize` (full-int8)")
    shape = tuple(int(d) for d in inp["shape"])
    if len(shape) == 4 and shape[1:3] == IMAGE_INPUT_SHAPE[1:3] and shape[3] != CHANNELS:
        raise TinydriftError(f"{path}: input shape {shape} has {shape[3]} colour channels; camera models take RGB "
                             f"{IMAGE_INPUT_SHAPE} (the monitor summarizes 3 colours): train it on `tinydrift data plant`")
    if shape not in DEVICE_INPUTS:
        expected = " or ".join(f"{s} ({what})" for s, what in DEVICE_INPUTS.items())
        raise TinydriftError(f"{path}: input shape {shape}, expected {expected}")
    scale, zero_point = inp["quantization"]
    if scale != 1.0 or zero_point != 0:
        raise TinydriftError(f"{path}: input quantization scale {scale} zero point {zero_point}; the device feeds "
                             "its int8 features unchanged and needs scale 1, zero point 0 (use `tinydrift quantize`)")
    out_scale, out_zp = out["quantization"]
    if out_scale != 1.0 / 256 or out_zp != -128:
        raise TinydriftError(f"{path}: output quantization {out_scale}/{out_zp}; the drift monitor reads "
                             "softmax probabilities with scale 1/256 and zero point -128")
    if num_classes is not None and out["shape"][-1] != num_classes:
        raise TinydriftError(f"{path}: {out['shape'][-1]} outputs, expected {num_classes} classes")
    unsupported = sorted(set(info["ops"]) - DEVICE_OPS)
    if unsupported:
        raise TinydriftError(f"{path}: ops the device cannot run: {', '.join(unsupported)} "
                             f"(supported: {', '.join(sorted(DEVICE_OPS))})")
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
        path = ModelDir(path).int8_model
    if not path.exists():
        raise TinydriftError(f"{path}: no int8 model; run `tinydrift quantize` first")
    model = path.read_bytes()
    check_device_model(model, path)
    return model, path
