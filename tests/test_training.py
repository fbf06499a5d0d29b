import csv

import keras
import numpy as np
import pytest

from zoolib.cnn import models, training
from zoolib.data import pipeline, processed
from zoolib.universe import synthetic


def test_train_stops_early_keeps_best_weights_and_writes_logs(tmp_path):
    images, cat = synthetic.simulate(300, size=32, seed=1)
    votes = processed.votes_array(cat, ["smooth-or-featured"])
    train_ds = pipeline.make_tf_dataset(images[:200], votes[:200], 32, seed=0)
    val_ds = pipeline.make_tf_dataset(
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


def test_an_interrupted_run_leaves_no_model_and_no_checkpoint(tmp_path):
    images, cat = synthetic.simulate(64, size=16, seed=3)
    ds = pipeline.make_tf_dataset(images, processed.votes_array(cat, ["bar"]), 32, seed=0)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:  # after the first checkpoint was written
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train(
            lambda: models.build_bayesian_cnn(16, 1, 1, seed=0), ds, ds, epochs=3,
            model_path=tmp_path / "m.keras", callbacks=[Interrupt()],
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_tensorboard_logs_or_a_clear_error_before_training(tmp_path):
    import importlib.util

    images, cat = synthetic.simulate(64, size=16, seed=2)
    ds = pipeline.make_tf_dataset(images, processed.votes_array(cat, ["bar"]), 32, seed=0)
    run = dict(epochs=1, log_dir=tmp_path / "logs", model_path=tmp_path / "m.keras")
    build = lambda: models.build_bayesian_cnn(16, 1, 1, seed=0)  # noqa: E731
    if importlib.util.find_spec("tensorboard") is None:  # (not in this project's environment)
        with pytest.raises(ValueError, match="tensorboard=True needs the tensorboard package"):
            training.train(build, ds, None, tensorboard=True, **run)
        assert not (tmp_path / "logs").exists() and not (tmp_path / "m.keras").exists()
    else:
        training.train(build, ds, None, tensorboard=True, **run)
        assert any((tmp_path / "logs" / "tensorboard").rglob("events.out.tfevents.*"))


def test_train_respects_the_distribution_strategy_scope():
    import tensorflow as tf

    images, cat = synthetic.simulate(64, size=32, seed=2)
    ds = pipeline.make_tf_dataset(images, processed.votes_array(cat, ["bar"]), 32, seed=0)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        _, _, model = training.train(
            lambda: models.build_bayesian_cnn(32, 1, 1, seed=0), ds, None, epochs=1
        )
    assert isinstance(model, keras.Model)
    assert model.optimizer is not None and model.optimizer.iterations.numpy() == 2
    # a model built outside the scope would train unmirrored weights: refused, saying why
    built_outside = models.build_bayesian_cnn(32, 1, 1, seed=0)
    with strategy.scope(), pytest.raises(ValueError, match="outside the OneDeviceStrategy scope"):
        training.train(built_outside, ds, None, epochs=1)
    with pytest.raises(ValueError, match="loop"):
        training.train(lambda: models.build_bayesian_cnn(32, 1, 1), ds, None, 1, loop="keras")


def test_custom_loop_trains_exactly_like_fit(tmp_path):
    # The loop used under MultiWorkerMirroredStrategy, run on one device, against Keras fit:
    # the same seeds give the same dropout masks and batches, so the weights must come out the
    # same, and the logs and checkpoints must say the same.
    images, cat = synthetic.simulate(260, size=16, seed=3)
    votes = processed.votes_array(cat, ["smooth-or-featured", "bar"])
    runs = {}
    for loop in ("fit", "custom"):
        train_ds = pipeline.make_tf_dataset(images[:200], votes[:200], 48, seed=0)  # 4 x 48 + 8
        val_ds = pipeline.make_tf_dataset(images[200:], votes[200:], 64, False, False)
        history, path, model = training.train(
            lambda: models.build_bayesian_cnn(16, 1, 2, seed=0), train_ds, val_ds, epochs=3,
            learning_rate=3e-3, patience=1, model_path=tmp_path / loop / "m.keras",
            log_dir=tmp_path / loop, seed=0, loop=loop,
        )  # fmt: skip
        with open(tmp_path / loop / "training_log.csv") as fh:
            logged = list(csv.DictReader(fh))
        runs[loop] = history, model, models.load_model(path), logged
    (h_fit, m_fit, saved_fit, log_fit), (h_own, m_own, saved_own, log_own) = runs.values()
    assert h_fit.keys() == h_own.keys() == {"loss", "val_loss"}
    assert len(h_own["loss"]) == len(log_own) == len(h_fit["loss"])
    for key in h_fit:  # epoch means of the same numbers, summed in another order
        np.testing.assert_allclose(h_own[key], h_fit[key], rtol=1e-5)
        np.testing.assert_allclose([float(r[key]) for r in log_own], h_own[key], rtol=1e-6)
        np.testing.assert_allclose(
            [float(r[key]) for r in log_own], [float(r[key]) for r in log_fit], rtol=1e-5
        )
    assert m_own.optimizer.iterations.numpy() == m_fit.optimizer.iterations.numpy()
    weights = (m_fit, m_own, saved_fit, saved_own)
    for a, b, saved_a, saved_b in zip(*(m.get_weights() for m in weights), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        # each checkpoint holds its loop's restored best weights
        np.testing.assert_array_equal(saved_a, a)
        np.testing.assert_array_equal(saved_b, b)


def test_custom_loop_adds_regularisation_losses_as_fit_does():
    # no dropout: both loops must then give the same weights, penalty included
    images, cat = synthetic.simulate(96, size=16, seed=4)
    votes = processed.votes_array(cat, ["bar"])

    def build(l2):
        inputs = keras.Input((16, 16, 1))
        x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
        penalty = keras.regularizers.L2(l2) if l2 else None
        return keras.Model(inputs, keras.layers.Dense(1, kernel_regularizer=penalty)(x))

    runs = {}
    for loop, l2 in (("fit", 1.0), ("custom", 1.0), ("fit", 0.0)):
        # a new pipeline for each run: each pass over one is the next epoch's order
        train_ds, val_ds = (pipeline.make_tf_dataset(images, votes, 32, augment_images=False)
                            for _ in range(2))  # fmt: skip
        history, _, model = training.train(
            lambda l2=l2: build(l2), train_ds, val_ds, 3, learning_rate=0.01, seed=0, loop=loop
        )
        runs[loop, l2] = history, np.concatenate([w.ravel() for w in model.get_weights()])
    (h_fit, w_fit), (h_own, w_own), (_, w_free) = runs.values()
    np.testing.assert_allclose(w_own, w_fit, rtol=1e-5, atol=1e-6)
    for key in ("loss", "val_loss"):  # the logged losses include the penalty in both
        np.testing.assert_allclose(h_own[key], h_fit[key], rtol=1e-5)
    # and the penalty matters: without it the weights end up far outside that tolerance
    assert np.abs(w_free - w_fit).max() > 1e-2 and np.linalg.norm(w_fit) < np.linalg.norm(w_free)


# 256 galaxies at 16 px whose vote fraction follows their brightness: easy to learn


def test_keep_start_keeps_better_starting_weights(tmp_path):
    """Fine-tuning from weights already fitted, with a learning rate that can only hurt: the
    starting weights are kept and saved, and early stopping counts its patience from the start:
    with patience 2, the validation losses (25.8, 2.37, 2.11, 2.13; the start 2.09) stop it
    after 4 epochs (an epoch that improves on the best trained one still goes on, as Keras'
    baseline does), where counting from the best trained epoch (2.11) runs a fifth; with a
    harmless rate, the trained ones are kept."""
    images, cat = synthetic.simulate(128, size=16, seed=4)
    votes = processed.votes_array(cat, ["bar"])
    ds = pipeline.make_tf_dataset(images, votes, 32, seed=0, augment_images=False)
    val = pipeline.make_tf_dataset(images, votes, 128, shuffle=False, augment_images=False)
    build = lambda: models.build_bayesian_cnn(16, 1, 1, dropout_rate=0.0, seed=0)  # noqa: E731
    _, _, fitted = training.train(build, ds, val, epochs=3, learning_rate=1e-2, seed=0)
    start = [w.numpy().copy() for w in fitted.weights]
    history, path, model = training.train(
        fitted, ds, val, epochs=8, learning_rate=0.3, seed=0, keep_start=True,
        model_path=tmp_path / "m.keras", patience=2,
    )  # fmt: skip
    assert history["start_val_loss"][0] < min(history["val_loss"])  # the huge rate hurt
    assert len(history["val_loss"]) == 4
    for a, b in zip(start, model.weights, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    for a, b in zip(start, models.load_model(path).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_inner_split_holds_out_the_fraction_by_seed_and_at_least_four_rows():
    mask = training.inner_split(1000, 0.1, seed=3)
    assert mask.dtype == bool and mask.shape == (1000,)
    # each row with probability 0.1: the count is binomial(1000, 0.1), sd 9.5
    assert 60 < mask.sum() < 140
    np.testing.assert_array_equal(mask, np.random.default_rng(3).random(1000) < 0.1)
    assert not np.array_equal(mask, training.inner_split(1000, 0.1, seed=4))
    small = [training.inner_split(12, 0.1, seed) for seed in range(50)]
    assert min(m.sum() for m in small) == training.MIN_INNER  # topped up where too few were drawn
    for bad, match in [((100, 0.0, 0), "val_fraction"), ((100, 1.0, 0), "val_fraction"),
                       ((4, 0.5, 0), "4 labelled rows")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            training.inner_split(*bad)


def test_fit_labels_is_train_on_the_two_pipelines():
    """With a validation set given, fit_labels trains exactly as training.train on the pipelines
    notebook 02 built by hand (same weights); without one, on the inner split's rows."""
    images, cat = synthetic.simulate(120, size=16, seed=2)
    votes = processed.votes_array(cat, ["smooth-or-featured"])
    fit = training.FitSettings(epochs=1, batch_size=32, learning_rate=1e-3, patience=1, seed=5)

    def build():
        return models.build_bayesian_cnn(16, 1, 1, seed=0)

    def by_hand(x_train, y_train, x_val, y_val):
        train_ds = pipeline.make_tf_dataset(x_train, y_train, 32, seed=5)
        val_ds = pipeline.make_tf_dataset(x_val, y_val, 256, shuffle=False, augment_images=False)
        return training.train(build, train_ds, val_ds, 1, learning_rate=1e-3, patience=1, seed=5)

    given = training.fit_labels(build, images[:90], votes[:90], fit, val=(images[90:], votes[90:]))
    manual = by_hand(images[:90], votes[:90], images[90:], votes[90:])
    inner = training.inner_split(120, 0.1, 5)
    held = training.fit_labels(build, images, votes, fit)
    manual_inner = by_hand(images[~inner], votes[~inner], images[inner], votes[inner])
    for (h1, _, m1), (h2, _, m2) in [(given, manual), (held, manual_inner)]:
        assert h1["val_loss"] == h2["val_loss"]
        for a, b in zip(m1.get_weights(), m2.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert given[0]["val_loss"] != held[0]["val_loss"]


def test_choose_regime_and_its_errors():
    assert training.choose_regime("auto", training.FROZEN_BELOW - 1, True) == "frozen"
    assert training.choose_regime("auto", training.FROZEN_BELOW, True) == "fine_tune"
    assert training.choose_regime("auto", 10, True, can_freeze=False) == "fine_tune"
    assert training.choose_regime("fine_tune", 10, True) == "fine_tune"
    assert training.choose_regime("frozen", 10_000, True) == "frozen"
    assert training.choose_regime("auto", 10, False) == "scratch"
    with pytest.raises(ValueError, match="init 'scratch'"):
        training.choose_regime("frozen", 10, False)
    with pytest.raises(ValueError, match="regime must be one of"):
        training.choose_regime("finetune", 10, True)


def test_labelled_rows_counts_galaxies_with_any_vote():
    counts = np.zeros((5, 2, 2))
    counts[0, 1] = [1, 3]
    counts[3, 0] = [0, 1]
    assert training.labelled_rows(counts) == 2
    vectors = np.array([[0, 0, 0], [1, 0, 2], [0, 0, 0]])
    assert training.labelled_rows(vectors) == 1


def test_best_epoch_is_one_based_and_zero_when_the_start_was_kept():
    assert training.best_epoch({"val_loss": [3.0, 2.0, 2.5]}) == 2
    assert training.best_epoch({"val_loss": [3.0, 2.0], "start_val_loss": [1.5]}) == 0
    assert training.best_epoch({"val_loss": [3.0, 2.0], "start_val_loss": [2.5]}) == 2
    assert training.best_epoch({"loss": []}) == 0
