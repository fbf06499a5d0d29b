r"""Training loop for the Bayesian CNN: Keras ``fit``, or a ``tf.distribute`` loop for clusters.

Adam (learning rate 1e-3 as in the paper; any Keras optimizer by name) on
:class:`zoolib.cnn.losses.BinomialLoss`, early stopping on the validation loss with the best weights
restored, a checkpoint of the best model, a CSV log, optional TensorBoard logs, fixed seeds.
The active ``tf.distribute`` strategy is respected: the model is built (when a builder is
given) and compiled inside its scope, so the same call trains on one CPU, several GPUs
(MirroredStrategy; tested over two logical CPUs) or several machines
(MultiWorkerMirroredStrategy; tested with two local worker processes).

Under MultiWorkerMirroredStrategy :func:`train` runs its own ``tf.distribute`` loop instead of
``fit`` (:mod:`zoolib.cnn.distributed` says why and how); the callbacks, checkpoint and logs are
the same.

:func:`fit_labels` is the one way zoolib fits a CNN to labelled images (notebook 02 and the
experiments): it makes the two pipelines (augmented training batches, plain validation batches),
holds out an inner validation set when none is given, and calls :func:`train`. Its settings are
a :class:`FitSettings`, every one explicit.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoolib import files
from zoolib.cnn import distributed
from zoolib.cnn import precision as zprecision
from zoolib.cnn.distributed import Data
from zoolib.cnn.losses import BinomialLoss
from zoolib.data import pipeline


def train(
    model: keras.Model | Callable[[], keras.Model],
    train_ds: Data,
    val_ds: Data | None,
    epochs: int,
    learning_rate: float = 1e-3,
    patience: int = 5,
    model_path: str | Path | None = None,
    log_dir: str | Path | None = None,
    tensorboard: bool = False,
    seed: int = 0,
    verbose: int = 0,
    loop: str = "auto",
    callbacks: list[keras.callbacks.Callback] | None = None,
    optimizer: str = "adam",
    keep_start: bool = False,
    precision: str = "float32",
    loss: keras.losses.Loss | None = None,
) -> tuple[dict[str, list[float]], Path | None, keras.Model]:
    """Fit ``model`` on batches of (images (B, S, S, C), votes (B, Q, 2)) (or, with a tree's
    ``loss``, vote vectors (B, A)).

    Args:
        model: a Keras model, or a function returning one. Pass a function when training under
            a ``tf.distribute`` strategy so that the variables are created inside its scope.
        train_ds, val_ds: ``tf.data`` datasets of global batches (see
            :func:`zoolib.data.pipeline.make_tf_dataset`), or dataset functions of a
            ``tf.distribute.InputContext`` (see :func:`zoolib.data.pipeline.dataset_fn`) with which
            each worker reads only its own share. Without ``val_ds`` there is no early stopping and
            the last model is kept.
        epochs: maximum number of epochs.
        patience: epochs without improvement of the validation loss before stopping.
        model_path: where the best model is saved (``.keras``); None saves nothing. On a
            cluster only the chief writes it (to shared storage, if the others need it).
        log_dir: folder for ``training_log.csv`` (and ``tensorboard/`` if ``tensorboard``).
        seed: seeds Python, NumPy and TensorFlow before building and fitting.
        verbose: Keras progress output (0 silent, 1 progress bar, 2 one line per epoch).
        loop: ``"fit"`` (Keras ``model.fit``), ``"custom"`` (the distributed loop described
            above), or ``"auto"``: custom under MultiWorkerMirroredStrategy, else fit.
        callbacks: further Keras callbacks, run after the built-in ones (both loops).
        optimizer: name of a Keras optimizer (``"adam"`` as in the paper, ``"sgd"``, ...),
            created with ``learning_rate`` inside the strategy's scope.
        keep_start: for fine-tuning: measure the validation loss of the starting weights
            first (``history["start_val_loss"]``), and keep them, and save them to
            ``model_path``, if no epoch beats them. (Early stopping alone keeps the best
            *trained* epoch, which can be worse than a pretrained start.) ``fit`` loop only.
            With MC dropout each validation loss is one noisy draw, and the start's one draw
            is compared with the best of the epochs', which leans slightly towards training.
        precision: ``"float32"`` (default: exactly the computation of before), ``"mixed_bfloat16"``
            or ``"auto"`` (:func:`zoolib.cnn.precision.choose` for training, which says what it
            chose). The model's layers are set to it before compiling; the logits layer and the
            loss stay float32. :func:`zoolib.cnn.precision.policy_of` reads it off the returned
            model.
        loss: the Keras loss (default :class:`zoolib.cnn.losses.BinomialLoss`, the paper's); a
            tree's :class:`zoolib.cnn.losses.TreeLoss` trains on vote vectors (fit loop only).

    Returns:
        (history as {metric: per-epoch values}, ``model_path`` (None if not given; on the
        other workers of a cluster, the path the chief wrote), the fitted model with the best
        weights restored).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}")
    if loop not in ("auto", "fit", "custom"):
        raise ValueError(f"loop must be 'auto', 'fit' or 'custom', got {loop!r}")
    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ValueError(
            "tensorboard=True needs the tensorboard package, which is not installed "
            "(pip install tensorboard)"
        )
    choice = zprecision.choose(precision, "train")
    if precision == zprecision.AUTO:
        print(choice, flush=True)  # auto says what it chose
    keras.utils.set_random_seed(seed)
    strategy = tf.distribute.get_strategy()
    if loop == "auto":
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        loop = "custom" if multi_worker else "fit"
    if loss is not None and loop == "custom":
        raise ValueError("a loss other than BinomialLoss needs the fit loop (one machine)")
    with strategy.scope():
        if not isinstance(model, keras.Model):
            model = model()
        zprecision.apply(model, choice.policy)
        opt = keras.optimizers.get(optimizer)
        opt.learning_rate = learning_rate
        model.compile(optimizer=opt, loss=loss or BinomialLoss())
    if tf.distribute.has_strategy() and not all(
        strategy.extended.variable_created_in_scope(v.value) for v in model.trainable_variables
    ):
        raise ValueError(
            f"the model's weights were created outside the {type(strategy).__name__} scope: "
            "pass a function that builds the model (train(lambda: build(...), ...))"
        )
    distributed.separate_dropout_streams(model, strategy)
    start = None
    if keep_start and val_ds is None:
        raise ValueError("keep_start compares against the validation loss: pass val_ds")
    if keep_start:
        if loop != "fit":
            raise ValueError("keep_start needs the fit loop (one machine)")
        start_loss = float(model.evaluate(_global_batches(val_ds), verbose=0))
        start = (start_loss, [w.numpy().copy() for w in model.weights])
    model_path = Path(model_path) if model_path is not None else None
    # on a cluster every worker runs the same callbacks; only the chief writes where asked
    scratch = None if strategy.extended.should_checkpoint else Path(tempfile.mkdtemp())
    verbose = verbose if scratch is None else 0  # one progress bar per cluster, the chief's
    write_model = scratch / "model.keras" if scratch and model_path else model_path
    # the checkpoint is written under a hidden name and renamed into place at the end, so an
    # interrupted run never leaves a half-written model where the finished one belongs
    checkpoint = None
    if write_model is not None:
        checkpoint = files.temporary_sibling(write_model, "checkpoint", keep_suffix=True)
    write_logs = scratch / "logs" if scratch and log_dir is not None else log_dir
    callbacks = [
        *_callbacks(val_ds is not None, patience, checkpoint, write_logs, tensorboard,
                    baseline=None if start is None else start[0]),
        *(callbacks or []),
    ]
    try:
        if loop == "fit":
            history = model.fit(
                _global_batches(train_ds),
                validation_data=_global_batches(val_ds),
                epochs=epochs,
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,  # the tf.data pipeline shuffles (seeded); Keras would only warn
            ).history
        else:
            history = distributed.custom_loop(
                model, strategy, train_ds, val_ds, epochs, callbacks, verbose
            )
        if start is not None:
            history["start_val_loss"] = [start[0]]
            if start[0] <= min(history["val_loss"]):  # no epoch beat the starting weights
                for w, value in zip(model.weights, start[1], strict=True):
                    w.assign(value)
                if checkpoint is not None:
                    files.save_model(model, checkpoint)
        if checkpoint is not None and checkpoint.exists():
            os.replace(checkpoint, write_model)
    finally:
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return {k: [float(v) for v in vals] for k, vals in history.items()}, model_path, model


@dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_labels` fits a CNN to labelled images. The defaults are notebook 02's."""

    epochs: int = 15  # at most; early stopping usually ends sooner
    batch_size: int = 64  # training galaxies per step
    learning_rate: float = 1e-4  # Adam; 1e-4 fine-tunes a pretrained CNN, 1e-3 trains from scratch
    patience: int = 4  # epochs without a better validation loss before stopping
    augment: bool = True  # flips, rotations and zooms of the training batches
    val_fraction: float = 0.1  # held out of the labelled rows when no validation set is given
    val_batch_size: int = 256  # validation batches (no augmentation, no shuffling)
    seed: int = 0  # the inner split, the pipeline's order and augmentations, the weights


MIN_INNER = 4  # an inner validation set has at least this many rows


def inner_split(n: int, fraction: float, seed: int) -> np.ndarray:
    """(n,) bool mask of the rows held out for early stopping: each row with probability
    ``fraction`` (``default_rng(seed).random(n) < fraction``), or, when that draws fewer than
    :data:`MIN_INNER` rows, :data:`MIN_INNER` rows at random from the same generator."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {fraction}")
    if n < MIN_INNER + 1:
        raise ValueError(f"{n} labelled rows: need at least {MIN_INNER + 1} to hold out "
                         f"{MIN_INNER} for early stopping")  # fmt: skip
    rng = np.random.default_rng(seed)
    inner = rng.random(n) < fraction
    if inner.sum() < MIN_INNER:
        inner = np.zeros(n, bool)
        inner[rng.choice(n, MIN_INNER, replace=False)] = True
    return inner


def fit_labels(
    build: Callable[[], keras.Model],
    images: np.ndarray,
    votes: np.ndarray,
    settings: FitSettings = FitSettings(),
    val: tuple[np.ndarray, np.ndarray] | None = None,
    **train_options,
) -> tuple[dict[str, list[float]], Path | None, keras.Model]:
    """Fit the model ``build()`` makes to ``images`` (G, S, S, C) uint8 and their ``votes``
    ((G, Q, 2) [k, N]; a consensus label is k in {0, 1} of N = 1; or a tree's vote vectors).

    ``val`` (images, votes) stops early on a validation set of its own (notebook 02's split);
    without it, :func:`inner_split` holds out ``settings.val_fraction`` of the rows. Other
    keyword arguments go to :func:`train` (``keep_start``, ``precision``, ``loss``,
    ``model_path``, ``log_dir``). Returns what :func:`train` returns."""
    if val is None:
        inner = inner_split(len(images), settings.val_fraction, settings.seed)
        val = images[inner], votes[inner]
        images, votes = images[~inner], votes[~inner]
    s = settings
    train_ds = pipeline.make_tf_dataset(images, votes, s.batch_size, seed=s.seed,
                                        augment_images=s.augment)  # fmt: skip
    val_ds = pipeline.make_tf_dataset(*val, s.val_batch_size, shuffle=False, augment_images=False)
    return train(build, train_ds, val_ds, s.epochs, learning_rate=s.learning_rate,
                 patience=s.patience, seed=s.seed, **train_options)  # fmt: skip


def _callbacks(
    validate: bool, patience: int, model_path: Path | None, log_dir, tensorboard: bool,
    baseline: float | None = None,
) -> list[keras.callbacks.Callback]:
    callbacks: list[keras.callbacks.Callback] = []
    monitor = "val_loss" if validate else "loss"
    if validate:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=patience, restore_best_weights=True,
                baseline=baseline,  # the start's loss: patience counts from it
            )
        )
    if model_path is not None:
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
    return callbacks


def _global_batches(data: Data | None) -> tf.data.Dataset | None:
    """For ``fit``: a dataset function's single pipeline of whole global batches.

    Keras splits each global batch between the local replicas itself. (Handing ``fit`` a
    ``distribute_datasets_from_function`` dataset instead made it run more steps per epoch than
    there are batches with the pinned Keras.)
    """
    if data is None or isinstance(data, tf.data.Dataset):
        return data
    return data(tf.distribute.InputContext())  # one input pipeline, one replica


REGIMES = ("auto", "fine_tune", "frozen")  # notebook 02's regime choices
FROZEN_BELOW = 250  # auto: fewer labelled training galaxies than this keep the trunk frozen


def labelled_rows(votes) -> int:
    """Galaxies with at least one vote: (G, Q, 2) [k, N] counts, or (G, A) vote vectors."""
    votes = np.asarray(votes)
    total = votes[..., 1].sum(-1) if votes.ndim == 3 else votes.sum(-1)
    return int(np.count_nonzero(total > 0))


def choose_regime(regime: str, n_labelled: int, started: bool, can_freeze: bool = True) -> str:
    """How a started (pretrained) CNN learns a catalogue: ``"fine_tune"`` (every layer, a small
    learning rate) or ``"frozen"`` (the trunk fixed, only the head fitted on its features,
    :func:`zoolib.active.heads.fit_model_head`); ``"scratch"`` when nothing was started.

    ``"auto"`` freezes below :data:`FROZEN_BELOW` labelled galaxies and fine-tunes from there.
    Measured on two labels none of the trunks learned (``docs/representations.md``): on rings
    (the issue's yardstick) the frozen head was ahead of fine-tuning at every size up to all
    248, and in notebook 02 on 217 rings only the frozen head beat a constant guess; on edge-on
    it was ahead at 50 and 100 labels and behind at 200 (intervals overlapping a little).
    Between 200 and 250 the two labels disagree; auto keeps the choice that learned on both.
    ``can_freeze`` False (a head the frozen regime cannot fit, such as a question of three
    answers: :func:`zoolib.active.heads.can_fit_model_head`) makes auto fine-tune."""
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, not {regime!r}")
    if not started:
        if regime == "frozen":
            raise ValueError("regime 'frozen' keeps a pretrained trunk fixed: with init "
                             "'scratch' there is none; use regime 'auto' or another init")
        return "scratch"
    if regime == "auto":
        return "frozen" if n_labelled < FROZEN_BELOW and can_freeze else "fine_tune"
    return regime


def best_epoch(history: dict[str, list[float]]) -> int:
    """The epoch (1-based) of the lowest validation loss; 0 when the start was kept (no epoch
    beat ``start_val_loss``) or nothing was trained (no ``val_loss``)."""
    val = history.get("val_loss") or []
    if not val or history.get("start_val_loss", [np.inf])[0] <= min(val):
        return 0
    return int(np.argmin(val)) + 1
