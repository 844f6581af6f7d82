"""Train a DS-CNN: the keyword model on a clip set's int8 features, the camera model on an
image set's pixels."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinydrift.atomic import atomic_path, write_text
from tinydrift.data.clipset import ClipSet
from tinydrift.data.imageset import ImageSet
from tinydrift.data.labels import LABELS
from tinydrift.errors import TinydriftError
from tinydrift.modeldir import ModelDir
from tinydrift.quiet import held_back


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 24
    batch_size: int = 64
    learning_rate: float = 2e-3
    filters: int = 64
    blocks: int = 4
    seed: int = 0
    # SpecAugment-style masks: cheap, and they stop the model leaning on single channels.
    time_mask: int = 6
    freq_mask: int = 5


@dataclass(frozen=True)
class ImageTrainConfig:
    """The camera model: a DS-CNN for 48x48 RGB leaves (see dscnn.py for its shape)."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    filters: int = 16
    widths: tuple = (32, 64, 64)
    strides: tuple = (1, 2, 2)
    seed: int = 0


def as_model_input(inputs_int8: np.ndarray) -> np.ndarray:
    """The float tensor the Keras model takes: the int8 inputs as they are; keyword features
    [N, frames, channels] get their one channel axis, images [N, H, W, 3] have theirs."""
    x = inputs_int8.astype(np.float32)
    return x[..., None] if x.ndim == 3 else x


def _augment(batch: np.ndarray, rng: np.random.Generator, config: TrainConfig) -> np.ndarray:
    batch = batch.copy()
    n, frames, channels, _ = batch.shape
    floor = -128.0  # the feature value of an empty band
    for i in range(n):
        if config.time_mask:
            w = rng.integers(0, config.time_mask + 1)
            t0 = rng.integers(0, frames - w + 1)
            batch[i, t0:t0 + w] = floor
        if config.freq_mask:
            w = rng.integers(0, config.freq_mask + 1)
            f0 = rng.integers(0, channels - w + 1)
            batch[i, :, f0:f0 + w] = floor
    return batch


def _augment_images(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A leaf may lie any way up: the eight flips and quarter turns of each image (exact on
    pixels, so nothing the camera could not show)."""
    out = np.empty_like(batch)
    for i, image in enumerate(batch):
        image = np.rot90(image, int(rng.integers(4)))
        out[i] = image[:, ::-1] if rng.integers(2) else image
    return out


def train(train_set: ClipSet, val_set: ClipSet, model_dir: Path, config: TrainConfig = TrainConfig(),
          progress_factory=None):
    """Fit the keyword DS-CNN, keep the weights of the best validation epoch, save it to model_dir."""
    from tinydrift.model.dscnn import build_dscnn

    def build():
        return build_dscnn(len(LABELS), filters=config.filters, blocks=config.blocks)

    return _fit_and_save(build, train_set, val_set, model_dir, config, lambda b, rng: _augment(b, rng, config),
                         progress_factory)


def train_images(train_set: ImageSet, val_set: ImageSet, model_dir: Path,
                 config: ImageTrainConfig = ImageTrainConfig(), progress_factory=None):
    """Fit the camera DS-CNN on an image set (e.g. `tinydrift data plant`), as `train` does."""
    from tinydrift.model.dscnn import build_dscnn

    def build():
        return build_dscnn(len(train_set.label_names), filters=config.filters, input_shape=train_set.images.shape[1:],
                           first_kernel=(3, 3), widths=config.widths, strides=config.strides, name="image_dscnn")

    return _fit_and_save(build, train_set, val_set, model_dir, config, _augment_images, progress_factory)


def _fit_and_save(build, train_set, val_set, model_dir: Path, config, augment, progress_factory):
    import keras

    if len(train_set) == 0 or len(val_set) == 0:
        raise TinydriftError("training needs examples in both the training and the validation set")
    if tuple(val_set.label_names) != tuple(train_set.label_names):
        raise TinydriftError(f"the validation set's classes {val_set.label_names} are not the training set's "
                             f"{train_set.label_names}; build both with the same command")
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    # Same data and seed, same model: a reference model anyone can reproduce bit for bit.
    tf.config.experimental.enable_op_determinism()
    x_train = as_model_input(train_set.ensure_features())
    y_train = train_set.labels.astype(np.int64)
    x_val = as_model_input(val_set.ensure_features())
    y_val = val_set.labels.astype(np.int64)

    model = build()
    steps = int(np.ceil(len(x_train) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps * config.epochs)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    rng = np.random.default_rng(config.seed)
    advance = progress_factory("training (epochs)", config.epochs) if progress_factory else None
    history = []
    with held_back():  # tf.data's and Keras's own warnings; the progress bar still moves
        best_acc, best_weights = _epochs(model, config, steps, rng, augment, x_train, y_train, x_val, y_val,
                                         history, advance)
    model.set_weights(best_weights)

    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(ModelDir(model_dir).float_model) as tmp:
        keras_path = tmp.with_suffix(".keras")
        model.save(keras_path)
        keras_path.replace(tmp)
    write_text(ModelDir(model_dir).training_json, json.dumps(
        {"config": asdict(config), "labels": list(train_set.label_names), "train_clips": len(train_set),
         "val_clips": len(val_set), "best_val_accuracy": float(best_acc), "history": history}, indent=2))
    return model, history


def _epochs(model, config, steps, rng, augment, x_train, y_train, x_val, y_val, history, advance):
    """The training loop; returns the best validation accuracy and that epoch's weights."""
    best_acc, best_weights = -1.0, None
    for epoch in range(config.epochs):
        start = time.time()
        order = rng.permutation(len(x_train))
        losses = []
        for s in range(steps):
            idx = order[s * config.batch_size:(s + 1) * config.batch_size]
            loss, _ = model.train_on_batch(augment(x_train[idx], rng), y_train[idx])
            losses.append(float(loss))
        val_loss, val_acc = model.evaluate(x_val, y_val, batch_size=256, verbose=0)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_loss": float(val_loss),
                        "val_accuracy": float(val_acc), "seconds": round(time.time() - start, 1)})
        if val_acc > best_acc:
            best_acc, best_weights = val_acc, model.get_weights()
        if advance:
            advance(1)
    return best_acc, best_weights


def load_float_model(model_dir: Path):
    import keras

    path = ModelDir(model_dir).float_model
    if not path.exists():
        raise TinydriftError(f"{path}: no trained model; run `tinydrift train` first")
    try:
        return keras.models.load_model(path)
    except Exception as e:  # Keras says "File not found" of a file that is there but damaged
        from tinydrift.data.npzfile import is_zip

        why = "damaged or cut" if is_zip(path) else "not a Keras model file (a .keras zip archive)"
        raise TinydriftError(f"{path}: {why} ({type(e).__name__}); train the model again with `tinydrift train`") from None
