"""Train the DS-CNN on a clip set's int8 features."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinydrift.atomic import atomic_path, write_text
from tinydrift.data.clipset import ClipSet
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


def as_model_input(features_int8: np.ndarray) -> np.ndarray:
    """The float tensor the Keras model takes: the int8 features as they are, one channel."""
    return features_int8.astype(np.float32)[..., None]


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


def train(train_set: ClipSet, val_set: ClipSet, model_dir: Path, config: TrainConfig = TrainConfig(),
          progress_factory=None):
    """Fit the model, keep the weights of the best validation epoch, save it to model_dir."""
    import keras

    from tinydrift.model.dscnn import build_dscnn

    if len(train_set) == 0 or len(val_set) == 0:
        raise TinydriftError("training needs clips in both the training and the validation set")
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    # Same data and seed, same model: a reference model anyone can reproduce bit for bit.
    tf.config.experimental.enable_op_determinism()
    x_train = as_model_input(train_set.ensure_features())
    y_train = train_set.labels.astype(np.int64)
    x_val = as_model_input(val_set.ensure_features())
    y_val = val_set.labels.astype(np.int64)

    model = build_dscnn(len(LABELS), filters=config.filters, blocks=config.blocks)
    steps = int(np.ceil(len(x_train) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps * config.epochs)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    rng = np.random.default_rng(config.seed)
    advance = progress_factory("training (epochs)", config.epochs) if progress_factory else None
    history = []
    with held_back():  # tf.data's and Keras's own warnings; the progress bar still moves
        best_acc, best_weights = _epochs(model, config, steps, rng, x_train, y_train, x_val, y_val, history, advance)
    model.set_weights(best_weights)

    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(ModelDir(model_dir).float_model) as tmp:
        keras_path = tmp.with_suffix(".keras")
        model.save(keras_path)
        keras_path.replace(tmp)
    write_text(ModelDir(model_dir).training_json, json.dumps(
        {"config": asdict(config), "train_clips": len(train_set), "val_clips": len(val_set),
         "best_val_accuracy": float(best_acc), "history": history}, indent=2))
    return model, history


def _epochs(model, config, steps, rng, x_train, y_train, x_val, y_val, history, advance):
    """The training loop; returns the best validation accuracy and that epoch's weights."""
    best_acc, best_weights = -1.0, None
    for epoch in range(config.epochs):
        start = time.time()
        order = rng.permutation(len(x_train))
        losses = []
        for s in range(steps):
            idx = order[s * config.batch_size:(s + 1) * config.batch_size]
            loss, _ = model.train_on_batch(_augment(x_train[idx], rng, config), y_train[idx])
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
    return keras.models.load_model(path)
