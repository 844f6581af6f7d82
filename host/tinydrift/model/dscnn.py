"""Depthwise-separable CNNs, after MLPerf Tiny's keyword-spotting DS-CNN: one strided
convolution, then blocks of a 3x3 depthwise and a 1x1 pointwise convolution, global
average pooling and a softmax. The keyword model and the camera model are two shapes of it.

Keyword spotting: MLPerf's reference sees 49x10 MFCCs; our 40 log-mel channels are four times
wider, so the first depthwise block strides by 2 to keep the pointwise layers' cost near the
reference's (about 3.7 M multiply-accumulates per inference instead of 10 M).

Plant disease (48x48 RGB): a 3x3 stem with stride 2, then blocks widening 32 -> 64 -> 64
while striding to 12x12 and 6x6 (MobileNet's pattern): about 1.1 M multiply-accumulates.

MLPerf Tiny's reference itself (49x10 MFCCs, every block at stride 1, a 24x5 pool over the
25x5 map): mlperf_dscnn.py, for the device's cycle estimate.
"""

from __future__ import annotations

from tinydrift.frontend import NUM_CHANNELS, NUM_FRAMES

# Keras' default BatchNormalization momentum (0.99) left validation at chance for epochs:
# the depthwise layers' running variances decay too slowly from 1.0.
BN_MOMENTUM = 0.9
KWS_INPUT = (NUM_FRAMES, NUM_CHANNELS, 1)


def build_dscnn(num_classes: int = 12, filters: int = 64, blocks: int = 4, dropout: float = 0.2, *,
                input_shape: tuple = KWS_INPUT, first_kernel: tuple = (10, 4),
                widths: tuple | None = None, strides: tuple | None = None, pool_size: tuple | None = None,
                name: str = "dscnn"):
    """`filters`: the first convolution's; `widths`: each block's pointwise filters (default
    `filters` for all `blocks`); `strides`: each block's depthwise stride (default 2, then 1s);
    `pool_size`: the final average pool's window (default the whole map).

    The input is the model's int8 tensor as floats (-128..127): the converter then gives the
    int8 input scale 1 and zero point 0, and the device feeds its features or pixels (minus
    128) unchanged.
    """
    import keras
    from keras import layers

    widths = tuple(widths) if widths is not None else (filters,) * blocks
    strides = tuple(strides) if strides is not None else (2,) + (1,) * (len(widths) - 1)

    def bn_relu(x):
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        return layers.ReLU()(x)

    inputs = keras.Input(shape=input_shape, name="features")
    x = layers.Conv2D(filters, first_kernel, strides=(2, 2), padding="same", use_bias=False)(inputs)
    x = bn_relu(x)
    for width, stride in zip(widths, strides):
        x = layers.DepthwiseConv2D((3, 3), strides=(stride, stride), padding="same", use_bias=False)(x)
        x = bn_relu(x)
        x = layers.Conv2D(width, (1, 1), use_bias=False)(x)
        x = bn_relu(x)
    x = layers.Dropout(dropout)(x)
    x = layers.AveragePooling2D(pool_size=pool_size or (x.shape[1], x.shape[2]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)
