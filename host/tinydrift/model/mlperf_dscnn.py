"""MLPerf Tiny's keyword-spotting reference model (the DS-CNN of the closed division), built
with our own DS-CNN builder, so the device's cost can be set beside the published record.

The published architecture: a 49x10 MFCC input; a 10x4 convolution of 64 filters at stride
2 ('same' padding: a 25x5x64 map); four blocks of a 3x3 depthwise convolution at stride 1 and
a 1x1 convolution of 64 filters, each followed by batch normalization and ReLU; a 24x5
average pool (the reference takes half the input's size, so one row of the 25 is left out);
a 12-way dense layer and softmax. 2,656,768 multiply-accumulates per inference:

    first convolution     25 x 5 x 64 x 10 x 4   =   320,000
    4 depthwise           25 x 5 x 64 x 9  x 4   =   288,000
    4 pointwise           25 x 5 x 64 x 64 x 4   = 2,048,000
    dense                 64 x 12                 =       768

Accuracy is not the point here (timing and bit-exactness are), but an untrained network
answers every input alike, which would make a weak bit-exactness check: the weights are
trained briefly (a few seconds) on a synthetic task, which of 12 random templates an input
is nearest to, so that outputs differ from input to input. The int8 model is cached in
build/models by seed.

    tflite = mlperf_dscnn_int8()        # bytes, full int8 like the project's own models
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinydrift import atomic, firmware

MLPERF_INPUT = (49, 10, 1)
MLPERF_FILTERS = 64
MLPERF_BLOCKS = 4
MLPERF_CLASSES = 12
MLPERF_POOL = (24, 5)
MLPERF_MACS = 2_656_768
CACHE_DIR = firmware.REPO_ROOT / "build" / "models"


def build_mlperf_dscnn(seed: int = 0):
    """The Keras model, weights drawn from `seed`."""
    import keras

    from tinydrift.model.dscnn import build_dscnn

    keras.utils.set_random_seed(seed)
    model = build_dscnn(MLPERF_CLASSES, filters=MLPERF_FILTERS, blocks=MLPERF_BLOCKS, input_shape=MLPERF_INPUT,
                        first_kernel=(10, 4), strides=(1,) * MLPERF_BLOCKS, pool_size=MLPERF_POOL,
                        name="mlperf_dscnn")
    return model


def template_labels(inputs: np.ndarray, seed: int = 0) -> np.ndarray:
    """The synthetic task's labels: which of 12 fixed random templates each input is nearest to."""
    templates = np.random.default_rng(seed + 1000).normal(0.0, 1.0, (MLPERF_CLASSES, inputs.shape[1]))
    return np.argmax(inputs.astype(np.float32) @ templates.T, axis=1)


def train_briefly(model, seed: int = 0, count: int = 3000, epochs: int = 3):
    import keras

    x = mlperf_inputs(count, seed=seed + 2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x.astype(np.float32).reshape(-1, *MLPERF_INPUT), template_labels(x, seed), batch_size=100,
              epochs=epochs, verbose=0)
    return model


def mlperf_inputs(count: int, seed: int = 0) -> np.ndarray:
    """int8 inputs [count, 49 * 10]: MFCC-like rows (a large first coefficient, the others
    shrinking), mixed with uniform noise over the whole int8 range."""
    rng = np.random.default_rng(seed)
    frames, coefficients, _ = MLPERF_INPUT
    spread = 60.0 / (1.0 + np.arange(coefficients))
    shaped = rng.normal(0.0, 1.0, (count, frames, coefficients)) * spread + rng.normal(0.0, 30.0, (count, 1, 1))
    noise = rng.uniform(-128, 128, (count, frames, coefficients))
    mix = rng.uniform(0.0, 1.0, (count, 1, 1))
    x = np.clip(np.round((1 - mix) * shaped + mix * noise), -128, 127)
    return x.reshape(count, -1).astype(np.int8)


def mlperf_dscnn_int8(seed: int = 0, cache_dir: Path = CACHE_DIR) -> bytes:
    """The full-int8 .tflite (int8 input and output, batch 1), converted once per seed."""
    path = Path(cache_dir) / f"mlperf_dscnn_seed{seed}.tflite"
    if path.is_file():
        return path.read_bytes()
    from tinydrift.model.quantize import convert_int8

    representative = mlperf_inputs(300, seed=seed + 1).astype(np.float32).reshape(-1, *MLPERF_INPUT)
    # The int8 extremes once each: input scale 1, zero point 0, as the project's other models.
    representative[0, 0, 0, 0], representative[-1, 0, 0, 0] = 127.0, -128.0
    tflite = convert_int8(train_briefly(build_mlperf_dscnn(seed), seed), representative)
    atomic.write_bytes(path, tflite)
    return tflite
