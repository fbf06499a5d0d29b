r"""The ``tf.distribute`` training loop that :func:`zoolib.cnn.training.train` uses on clusters.

Why two loops: with the pinned Keras 3.15, ``model.fit`` fails under MultiWorkerMirroredStrategy
before the first step (it all-reduces a whole batch tuple, which TensorFlow cannot reduce:
keras-team/keras#20585), and would reduce its scalar logs along a batch axis they do not have.
So for that strategy :func:`zoolib.cnn.training.train` runs :func:`custom_loop`, the one of
TensorFlow's "custom training loop with MultiWorkerMirroredStrategy" guide, and drives the same
Keras callbacks from it:

.. math:: L = \frac{1}{B}\sum_{r}\sum_{i \in \text{replica } r}\sum_q \ell(k_{iq}, n_{iq}, x_{iq}),

each replica divides the NLL summed over its own galaxies by the size ``B`` of the whole global
batch (all-reduced, so uneven or empty parts of a last batch are weighted right), and the
optimizer sums the replicas' gradients, which gives the gradient of the global batch mean, the
same objective ``fit`` uses. Epoch losses are all-reduced sums over all galaxies divided by
their count, so every worker sees the same logs and early stopping stops them all at the same
epoch. Only the chief writes the checkpoint and logs where asked; the other workers run the
same callbacks into a scratch folder that is deleted afterwards (TensorFlow's advice, as
saving can involve collective reads that every worker must join).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from zoolib.cnn.losses import BinomialLoss

Data = tf.data.Dataset | Callable[[tf.distribute.InputContext], tf.data.Dataset]
REPLICA_SEED_STEP = 1540483477  # odd, < 2**31 - 2 and coprime to it


def separate_dropout_streams(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Give every replica its own dropout masks.

    Keras keeps a ``SeedGenerator`` state ``[seed, counter]`` per dropout layer, mirrored on
    every replica with aggregation "none": each copy starts equal and advances alike, so
    galaxy j of every replica's part of a batch would get the same mask. Replica r's copy
    gets ``seed + r * 1540483477`` instead (in replica context, which updates only that
    replica's copy). Keras reduces both numbers modulo 2**31 - 2 before TensorFlow's
    stateless ops hash the pair, and this odd shift is coprime to that modulus, so every
    replica has a different effective seed and with it an unrelated stream (a shift of the
    counter would not do: counters advance into each other's range). Replica 0 keeps the
    single-device stream.
    """
    states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    if strategy.num_replicas_in_sync == 1 or not states:
        return

    def shift():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        for state in states:
            step = tf.cast(tf.stack([replica, 0]), state.dtype)
            state.value.assign_add(step * tf.cast(REPLICA_SEED_STEP, state.dtype))

    strategy.run(tf.function(shift))



def custom_loop(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    train_ds: Data,
    val_ds: Data | None,
    epochs: int,
    callbacks: list[keras.callbacks.Callback],
    verbose: int,
) -> dict[str, list[float]]:
    """Epochs of ``strategy.run`` steps on the global-batch-mean NLL (see the module notes)."""
    per_galaxy = BinomialLoss().call  # (B, Q, 2), (B, Q) -> (B,) NLL summed over questions

    def distribute(data):
        if data is None:
            return None
        if isinstance(data, tf.data.Dataset):  # global batches, auto-sharded between workers
            return strategy.experimental_distribute_dataset(data)
        return strategy.distribute_datasets_from_function(data)  # one pipeline per worker

    # Each tf.function below issues at most one collective operation of its own (plus the
    # optimizer's all-reduce of the gradients), so that every replica and worker runs them in
    # the same order: collectives left unordered inside one graph can pair up wrongly (a
    # MirroredStrategy replica matched the batch-size sum with the other's gradient sum).
    def sum_over_replicas(fn):
        @tf.function(reduce_retracing=True)
        def run(*args):
            return strategy.reduce("SUM", strategy.run(fn, args=args), axis=None)

        return run

    # global batch size: the sum of the replicas' part sizes (parts of a last batch may differ)
    batch_size = sum_over_replicas(lambda y: tf.cast(tf.shape(y)[0], tf.float32))

    def penalty():  # regularisation losses of the last call (0 for the paper's CNN)
        return tf.add_n(model.losses) if model.losses else tf.constant(0.0)

    def replica_val(x, y):
        # [summed loss, galaxies] (the penalty once per galaxy: fit's batch-weighted mean)
        count = tf.cast(tf.shape(y)[0], tf.float32)
        total = tf.reduce_sum(per_galaxy(y, model(x, training=False)))
        return tf.stack([total + penalty() * count, count])

    val_step = sum_over_replicas(replica_val)
    summed = sum_over_replicas(lambda v: v)

    def replica_train(x, y, size):
        # each replica's NLL sum divided by the global batch size: the optimizer sums the
        # replicas' gradients into the gradient of the global batch mean (plus the penalty,
        # counted once over the replicas, as fit does)
        weights = model.trainable_variables
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(per_galaxy(y, model(x, training=True)))
            reg = penalty()
            loss = total / tf.maximum(size, 1.0) + reg / strategy.num_replicas_in_sync
        model.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
        return total + reg * tf.cast(tf.shape(y)[0], tf.float32)

    @tf.function(reduce_retracing=True)
    def train_step(x, y, size):
        return strategy.run(replica_train, args=(x, y, size))

    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    train_data, val_data = distribute(train_ds), distribute(val_ds)
    steps = int(train_ds.cardinality()) if isinstance(train_ds, tf.data.Dataset) else None
    hooks = keras.callbacks.CallbackList(
        callbacks, add_progbar=verbose != 0, verbose=verbose, model=model, epochs=epochs,
        steps=steps if steps is not None and steps >= 0 else None,
    )  # fmt: skip
    history: dict[str, list[float]] = {}
    model.stop_training = False
    hooks.on_train_begin()
    for epoch in range(epochs):
        hooks.on_epoch_begin(epoch)
        total = count = 0.0
        for i, (x, y) in enumerate(train_data):
            hooks.on_train_batch_begin(i)
            size = batch_size(y)
            step_total = summed(train_step(x, y, size))
            total, count = total + float(step_total), count + float(size)
            hooks.on_train_batch_end(i, {"loss": total / max(count, 1.0)})
        logs = {"loss": total / max(count, 1.0)}
        if val_data is not None:
            total = count = 0.0
            for x, y in val_data:
                step_total, step_count = val_step(x, y).numpy()
                total, count = total + float(step_total), count + float(step_count)
            logs["val_loss"] = total / max(count, 1.0)
        hooks.on_epoch_end(epoch, logs)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if model.stop_training:
            break
    hooks.on_train_end()
    return history
