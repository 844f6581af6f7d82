"""Test helper: small Keras models described by JSON-able specs, converted to full-int8
.tflite by TensorFlow and cached under build/test_models/ keyed by the spec.

Conversion runs in a subprocess so that the pytest process never imports TensorFlow, and
only for specs not cached yet: the first run pays ~0.3 s per model, later runs read files.
The subprocess (`python tests/helpers_tflite.py --serve`) is started once per pytest
process and kept for its later requests: importing TensorFlow alone takes 6-11 s, which a
subprocess per request paid for every test file and parametrized case that made a model.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / "build" / "test_models"
HELPER_VERSION = "2"  # bump when the model builders change meaning


def spec_key(spec: dict) -> str:
    text = json.dumps(spec, sort_keys=True) + HELPER_VERSION
    if spec["kind"] == "project_ds_cnn":  # convert again when the project's model changes
        text += (REPO_ROOT / "host" / "tinydrift" / "model" / "dscnn.py").read_text()
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path(spec: dict) -> Path:
    return CACHE_DIR / f"{spec.get('kind', 'model')}-{spec_key(spec)}.tflite"


class _Converter:
    """The conversion subprocess, started on the first request and kept: one request
    (a JSON file of specs) per line on its stdin, "ok" or "error" back on its stdout."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.log = None

    def convert(self, request: Path) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.log = tempfile.TemporaryFile(mode="w+")
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT / "host"))
            self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"], env=env, text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
            atexit.register(self.close)
        self.proc.stdin.write(f"{request}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            self.log.seek(0)
            raise RuntimeError(f"model conversion failed ({answer or 'the converter exited'}):\n{self.log.read()[-5000:]}")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


_CONVERTER = _Converter()


def tflite_models(specs: list[dict]) -> list[bytes]:
    """The converted model of every spec, converting the missing ones in the conversion subprocess."""
    missing = [spec for spec in specs if not cache_path(spec).exists()]
    if missing:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        request = CACHE_DIR / f"request-{os.getpid()}.json"
        request.write_text(json.dumps(missing))
        try:
            _CONVERTER.convert(request)
        finally:
            request.unlink(missing_ok=True)
    return [cache_path(spec).read_bytes() for spec in specs]


def tflite_model(spec: dict) -> bytes:
    return tflite_models([spec])[0]


# --- everything below runs in the conversion subprocess (imports TensorFlow) -------------


def _activation(name: str):
    return None if name == "none" else name


def build_keras_model(spec: dict):
    import keras

    keras.utils.set_random_seed(spec["seed"])
    kind = spec["kind"]
    layers = keras.layers
    if kind == "project_ds_cnn":
        return _project_ds_cnn(spec)
    inp = keras.Input(tuple(spec["input_shape"]), batch_size=spec.get("batch_size", 1))
    if kind == "conv":
        x = layers.Conv2D(
            spec["filters"],
            tuple(spec["kernel"]),
            strides=tuple(spec["strides"]),
            padding=spec["padding"],
            dilation_rate=tuple(spec["dilation"]),
            activation=_activation(spec["activation"]),
            use_bias=spec["use_bias"],
            groups=spec.get("groups", 1),
        )(inp)
    elif kind == "depthwise":
        x = layers.DepthwiseConv2D(
            tuple(spec["kernel"]),
            strides=tuple(spec["strides"]),
            padding=spec["padding"],
            depth_multiplier=spec["depth_multiplier"],
            dilation_rate=tuple(spec["dilation"]),
            activation=_activation(spec["activation"]),
            use_bias=spec["use_bias"],
        )(inp)
    elif kind == "dense":
        x = inp
        if spec["flatten"]:
            x = layers.Flatten()(x)
        elif spec.get("global_average"):  # Keras' commonest head, which converts to MEAN
            x = layers.GlobalAveragePooling2D()(x)
        for units, activation in spec.get("hidden", ()):  # layers before the head: (units, activation)
            x = layers.Dense(units, activation=_activation(activation))(x)
        if spec.get("branches"):  # Dense branches joined: a CONCATENATION before the head
            x = layers.Concatenate()([layers.Dense(units)(x) for units in spec["branches"]])
        x = layers.Dense(spec["units"], activation=_activation(spec["activation"]), use_bias=spec["use_bias"])(x)
    elif kind in ("avg_pool", "max_pool"):
        pool = layers.AveragePooling2D if kind == "avg_pool" else layers.MaxPooling2D
        x = pool(tuple(spec["pool"]), strides=tuple(spec["strides"]), padding=spec["padding"])(inp)
    elif kind == "softmax":
        x = inp
        if spec.get("dense_units"):
            x = layers.Dense(spec["dense_units"])(x)
        x = layers.Softmax()(x)
    elif kind == "add":
        x = _add_model(spec, inp)
    elif kind == "ds_cnn":
        x = _ds_cnn(spec, inp)
    elif kind == "logistic":
        x = layers.Dense(spec["dense_units"])(inp) if spec.get("dense_units") else inp
        x = layers.Activation("sigmoid")(x)
    elif kind == "concat":
        x = _concat_model(spec, inp)
    elif kind == "split":
        x = _split_model(spec, inp)
    elif kind == "slice":
        x = inp[tuple(slice(*s) for s in spec["slices"])]
        if spec.get("dense_units"):
            x = layers.Dense(spec["dense_units"])(x)
    elif kind == "tanh":  # an op tinydrift refuses
        x = layers.Dense(spec["units"], activation="tanh")(layers.Flatten()(inp))
    else:
        raise ValueError(f"unknown model kind {kind}")
    model = keras.Model(inp, x)
    # Random weights (not Keras' zero biases) so that every parameter matters.
    rng = np.random.default_rng(spec["seed"])
    scale = spec.get("weight_scale", 0.5)
    if kind != "ds_cnn":  # a deep network keeps Keras' fan-in scaled initial weights
        model.set_weights([rng.normal(0.0, scale, size=w.shape).astype(np.float32) for w in model.get_weights()])
    for layer in model.layers:
        if layer.name == "branch_b":  # a second ADD operand with another range
            layer.set_weights([w * spec["scale_ratio"] for w in layer.get_weights()])
    _randomize_batch_norm(model, rng)
    return model


def calibrate_like_trained(model, data: np.ndarray, seed: int) -> None:
    """Give an untrained deep network the statistics of a trained one, so that its int8
    outputs depend on the input (with initial weights, the same class wins for every input):
    each BatchNormalization gets the mean and variance its input really has on `data`, and
    the last Dense layer is scaled and centred so that logits vary by a few units."""
    import keras

    rng = np.random.default_rng(seed)
    batch = data.reshape(-1, *model.input_shape[1:])
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            probe = keras.Model(model.inputs, layer.input)
            activations = np.asarray(probe(batch, training=False))
            axes = tuple(range(activations.ndim - 1))
            gamma = 1.0 + 0.2 * rng.normal(size=activations.shape[-1])
            beta = 0.3 * rng.normal(size=activations.shape[-1])
            mean, variance = activations.mean(axis=axes), activations.var(axis=axes) + 1e-3
            layer.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, variance)])
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    features = np.asarray(keras.Model(model.inputs, dense.input)(batch, training=False))
    kernel, bias = dense.get_weights()
    logits = features @ kernel
    gain = 3.0 / max(float(logits.std(axis=0).mean()), 1e-6)
    kernel = kernel * gain
    bias = -(features @ kernel).mean(axis=0) + 0.5 * rng.normal(size=bias.shape)
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])


def _randomize_batch_norm(model, rng) -> None:
    """Trained-looking BatchNormalization statistics (positive variances), so that folding
    them into the convolutions changes every weight and bias."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shapes = [w.shape for w in layer.get_weights()]
            gamma = 1.0 + 0.2 * rng.normal(size=shapes[0])
            beta = 0.2 * rng.normal(size=shapes[1])
            mean = 0.2 * rng.normal(size=shapes[2])
            variance = 0.5 + np.abs(rng.normal(size=shapes[3]))
            layer.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, variance)])


def _project_ds_cnn(spec: dict):
    """The project's own DS-CNN (tinydrift.model.dscnn) with its Keras initial weights,
    random BatchNormalization statistics and a fixed batch of 1."""
    import keras

    from tinydrift.model.dscnn import build_dscnn

    model = build_dscnn(num_classes=spec["classes"], filters=spec["channels"])
    fixed = keras.models.clone_model(model, input_tensors=keras.Input(batch_shape=(1, *model.input_shape[1:])))
    fixed.set_weights(model.get_weights())
    return fixed


def _add_model(spec: dict, inp):
    import keras

    layers = keras.layers
    variant = spec["variant"]
    if variant == "branches":  # two convolutions with different ranges, then ADD
        a = layers.Conv2D(spec["channels"], 3, padding="same")(inp)
        b = layers.Conv2D(spec["channels"], 1, padding="same", activation="relu", name="branch_b")(inp)
        x = layers.Add()([a, b])
    elif variant == "residual":  # input + depthwise(input): one operand is the model input
        x = layers.Add()([inp, layers.DepthwiseConv2D(3, padding="same")(inp)])
    elif variant == "constant":  # broadcast a per-channel constant
        x = _constant_add_layer()(inp)
    else:
        raise ValueError(variant)
    if spec["activation"] != "none":
        x = layers.Activation(spec["activation"])(x)
    return x


def _concat_model(spec: dict, inp):
    """Concatenate along spec["axis"]: the input beside a convolution of it or beside its
    sigmoid (whose fixed scale the converter requantizes), or convolutions of it."""
    import keras

    layers = keras.layers
    axis = spec["axis"]
    if spec["variant"] == "input_and_conv":
        parts = [inp, layers.Conv2D(inp.shape[-1], 1, padding="same")(inp)]
    elif spec["variant"] == "input_and_sigmoid":  # LOGISTIC's fixed scale: a QUANTIZE int8 -> int8
        parts = [inp, layers.Activation("sigmoid")(inp)]
    else:
        parts = [layers.Conv2D(c, 1, padding="same", name=f"part_{i}")(inp) for i, c in enumerate(spec["channels"])]
        if axis != -1 and axis != 3:  # other axes need equal channel counts
            parts = [layers.Conv2D(spec["channels"][0], 1, padding="same")(inp) for _ in spec["channels"]]
    return layers.Concatenate(axis=axis)(parts)


def _split_model(spec: dict, inp):
    """keras.ops.split at uneven points (SPLIT_V), one part through a convolution, the parts
    concatenated back in reverse order."""
    import keras

    parts = keras.ops.split(inp, spec["indices"], axis=spec["axis"])
    parts = list(parts)
    parts[0] = keras.layers.Conv2D(int(parts[0].shape[-1]), 1, padding="same")(parts[0])
    return keras.layers.Concatenate(axis=spec["axis"])(parts[::-1])


def _constant_add_layer():
    import keras

    class ConstantAdd(keras.layers.Layer):
        def build(self, input_shape):
            self.offset = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="offset")

        def call(self, x):
            return x + self.offset

    return ConstantAdd()


def _ds_cnn(spec: dict, inp):
    """The reference DS-CNN layout: conv 10x4 stride 2, four depthwise-separable blocks,
    average pool, dense, softmax; BatchNormalization everywhere (folded by the converter)."""
    import keras

    layers = keras.layers
    channels = spec["channels"]
    x = layers.Conv2D(channels, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(channels, 1, use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
    x = layers.AveragePooling2D(pool_size=(int(x.shape[1]), int(x.shape[2])))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(spec["classes"])(x)
    return layers.Softmax()(x)


def structured_int8_inputs(seed: int, count: int, shape: tuple[int, ...]) -> np.ndarray:
    """int8 inputs that differ as feature maps do: per-sample level and contrast, a few
    smooth 2-D waves, noise. (Uniform noise averages out in a deep network: every input
    would give the same output.)"""
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    samples = np.empty((count, *shape), dtype=np.int8)
    for i in range(count):
        image = np.full(shape[:2], rng.uniform(-100, 80))
        for _ in range(3):
            fy, fx, phase = rng.uniform(0, 0.5), rng.uniform(0, 0.5), rng.uniform(0, 2 * np.pi)
            image += rng.uniform(0, 60) * np.cos(fy * rows + fx * cols + phase)
        image += rng.normal(0, rng.uniform(1, 30), size=image.shape)
        samples[i] = np.clip(np.round(image), -128, 127).astype(np.int8).reshape(shape)
    return samples


def representative_data(spec: dict, count: int = 32):
    shape = (count, 1, *spec["input_shape"])
    if spec["kind"] in ("ds_cnn", "project_ds_cnn"):
        return structured_int8_inputs(spec["seed"] + 1, count, tuple(spec["input_shape"])).astype(np.float32).reshape(shape)
    rng = np.random.default_rng(spec["seed"] + 1)
    low, high = spec.get("input_range", (-1.0, 1.0))
    return rng.uniform(low, high, size=shape).astype(np.float32)


def convert(spec: dict) -> bytes:
    import tensorflow as tf

    model = build_keras_model(spec)
    data = representative_data(spec)
    if spec["kind"] in ("ds_cnn", "project_ds_cnn"):
        calibrate_like_trained(model, representative_data(spec, count=128), spec["seed"])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if spec.get("float"):  # a plain float model, for refusal tests
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample] for sample in data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.uint8 if spec.get("output_uint8") else tf.int8
    if spec.get("int16"):  # 16-bit activations, 8-bit weights: refused by tinydrift
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        converter.inference_input_type = tf.int16
        converter.inference_output_type = tf.int16
    if not spec.get("per_channel", True):
        converter._experimental_disable_per_channel = True
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return converter.convert()


def _main(request_path: str) -> None:
    import contextlib
    import io

    specs = json.loads(Path(request_path).read_text())
    for spec in specs:
        with contextlib.redirect_stdout(io.StringIO()):  # the converter is chatty
            data = convert(spec)
        target = cache_path(spec)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)


def _serve() -> None:
    """Answer requests from stdin until it closes. TensorFlow's own C++ output goes to stderr
    (fd 1 is pointed there), so stdout carries only the answers."""
    import traceback

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        try:
            _main(line.strip())
            answers.write("ok\n")
        except Exception:  # noqa: BLE001 - reported to the test that asked, the server goes on
            traceback.print_exc()
            answers.write("error\n")
        answers.flush()


if __name__ == "__main__":
    _serve() if sys.argv[1] == "--serve" else _main(sys.argv[1])
