import csv

import keras
import numpy as np

from zoolib import data, models, synthetic, training


def test_train_stops_early_keeps_best_weights_and_writes_logs(tmp_path):
    images, cat = synthetic.simulate(300, size=32, seed=1)
    votes = data.votes_array(cat, ["smooth-or-featured"])
    train_ds = data.make_tf_dataset(images[:200], votes[:200], 32, seed=0)
    val_ds = data.make_tf_dataset(
        images[200:], votes[200:], 100, shuffle=False, augment_images=False
    )
    history, path, model = training.train(
        lambda: models.build_bayesian_cnn(32, 1, 1, seed=0), train_ds, val_ds, epochs=4,
        learning_rate=0.05, patience=1, model_path=tmp_path / "m.keras", log_dir=tmp_path, seed=0,
    )  # fmt: skip
    # a learning rate this large makes validation loss jump about, so early stopping acts
    assert 1 <= len(history["loss"]) <= 4
    with open(tmp_path / "training_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(history["loss"])
    # the returned model (best weights restored) and the checkpoint (saved at the best
    # validation loss) hold the same weights; MC dropout makes a re-evaluation noisy, so
    # weights, not losses, are compared
    saved = models.load_model(path)
    for a, b in zip(saved.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b)


def test_train_respects_the_distribution_strategy_scope():
    import tensorflow as tf

    images, cat = synthetic.simulate(64, size=32, seed=2)
    ds = data.make_tf_dataset(images, data.votes_array(cat, ["bar"]), 32, seed=0)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        _, _, model = training.train(
            lambda: models.build_bayesian_cnn(32, 1, 1, seed=0), ds, None, epochs=1
        )
    assert isinstance(model, keras.Model)
    assert model.optimizer is not None and model.optimizer.iterations.numpy() == 2
