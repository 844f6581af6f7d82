"""A depthwise-separable CNN for 49x40 features, after MLPerf Tiny's keyword-spotting DS-CNN.

MLPerf's reference sees 49x10 MFCCs; our 40 log-mel channels are four times wider, so the
first depthwise block strides by 2 to keep the pointwise layers' cost near the reference's
(about 3.7 M multiply-accumulates per inference instead of 10 M).
"""

from __future__ import annotations

from tinydrift.frontend import NUM_CHANNELS, NUM_FRAMES

# Keras' default BatchNormalization momentum (0.99) left validation at chance for epochs:
# the depthwise layers' running variances decay too slowly from 1.0.
BN_MOMENTUM = 0.9


def build_dscnn(num_classes: int = 12, filters: int = 64, blocks: int = 4, dropout: float = 0.2):
    import keras
    from keras import layers

    def bn_relu(x):
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        return layers.ReLU()(x)

    # The input is the int8 feature tensor as floats (-128..127): the converter then gives
    # the int8 input scale 1 and zero point 0, and the device feeds its features unchanged.
    inputs = keras.Input(shape=(NUM_FRAMES, NUM_CHANNELS, 1), name="features")
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inputs)
    x = bn_relu(x)
    for i in range(blocks):
        x = layers.DepthwiseConv2D((3, 3), strides=(2, 2) if i == 0 else (1, 1), padding="same", use_bias=False)(x)
        x = bn_relu(x)
        x = layers.Conv2D(filters, (1, 1), use_bias=False)(x)
        x = bn_relu(x)
    x = layers.Dropout(dropout)(x)
    x = layers.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="dscnn")
