"""Training loop around Keras ``fit`` for the Bayesian CNN.

Adam (learning rate 1e-3 as in the paper) on :class:`zoolib.losses.BinomialLoss`, early stopping
on the validation loss with the best weights restored, a checkpoint of the best model, a CSV
log, optional TensorBoard logs, fixed seeds. The active ``tf.distribute`` strategy is respected:
the model is built (when a builder is given) and compiled inside its scope, so the same call
trains on one CPU or several GPUs (MirroredStrategy; tested over two logical CPUs). Several
machines (MultiWorkerMirroredStrategy) do not work with the pinned TensorFlow 2.21 / Keras 3.15:
``model.fit`` fails inside Keras (keras-team/keras#20585), and the generator-based pipeline
would not be sharded across workers automatically anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from zoolib.losses import BinomialLoss


def train(
    model: keras.Model | Callable[[], keras.Model],
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset | None,
    epochs: int,
    learning_rate: float = 1e-3,
    patience: int = 5,
    model_path: str | Path | None = None,
    log_dir: str | Path | None = None,
    tensorboard: bool = False,
    seed: int = 0,
    verbose: int = 0,
) -> tuple[dict[str, list[float]], Path | None, keras.Model]:
    """Fit ``model`` on batches of (images (B, S, S, C), votes (B, Q, 2)).

    Args:
        model: a Keras model, or a function returning one. Pass a function when training under
            a ``tf.distribute`` strategy so that the variables are created inside its scope.
        train_ds, val_ds: ``tf.data`` datasets (see :func:`zoolib.data.make_tf_dataset`).
            Without ``val_ds`` there is no early stopping and the last model is kept.
        epochs: maximum number of epochs.
        patience: epochs without improvement of the validation loss before stopping.
        model_path: where the best model is saved (``.keras``); None saves nothing.
        log_dir: folder for ``training_log.csv`` (and ``tensorboard/`` if ``tensorboard``).
        seed: seeds Python, NumPy and TensorFlow before building and fitting.

    Returns:
        (history as {metric: per-epoch values}, the saved model path or None, the fitted
        model with the best weights restored).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}")
    keras.utils.set_random_seed(seed)
    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        if not isinstance(model, keras.Model):
            model = model()
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=BinomialLoss())
    callbacks: list[keras.callbacks.Callback] = []
    monitor = "val_loss" if val_ds is not None else "loss"
    if val_ds is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=patience, restore_best_weights=True
            )
        )
    if model_path is not None:
        model_path = Path(model_path)
        model_path.parent.mkdir(parents=True, exist_ok=True)
        callbacks.append(
            keras.callbacks.ModelCheckpoint(model_path, monitor=monitor, save_best_only=True)
        )
    if log_dir is not None:
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.CSVLogger(str(log_dir / "training_log.csv")))
        if tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(str(log_dir / "tensorboard")))
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles (seeded); Keras would only warn
    )
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}, model_path, model
