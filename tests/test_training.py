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


# Run in a fresh interpreter: logical devices can only be configured before TensorFlow
# initialises its devices, which importing zoolib or running any other test already did.
_MIRRORED_SCRIPT = r"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from zoolib import data, models, training

# 256 galaxies at 16 px whose vote fraction follows their brightness: easy to learn
rng = np.random.default_rng(0)
level = rng.random(256)
images = rng.normal(20 + 200 * level[:, None, None, None], 20, (256, 16, 16, 1))
images = np.clip(images, 0, 255).astype(np.uint8)
k = rng.binomial(40, 1 / (1 + np.exp(-10 * (level - 0.5))))
votes = np.stack([k, np.full(256, 40)], axis=-1)[:, None, :].astype(np.float32)


def run(strategy):
    ds = data.make_tf_dataset(images, votes, batch_size=32, seed=0)  # global batch size
    with strategy.scope():
        history, _, model = training.train(
            lambda: models.build_bayesian_cnn(16, 1, 1, seed=0), ds, None, epochs=8,
            learning_rate=3e-3, seed=0,
        )
    copies = [strategy.experimental_local_results(v.value) for v in model.trainable_variables]
    in_sync = all(np.array_equal(c[0].numpy(), x.numpy()) for c in copies for x in c)
    return dict(
        loss=history["loss"], replicas=strategy.num_replicas_in_sync,
        copies=min(len(c) for c in copies), in_sync=bool(in_sync),
        steps=int(model.optimizer.iterations.numpy()),
    )


print(json.dumps(dict(
    mirrored=run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
    default=run(tf.distribute.get_strategy()),
)))
"""


def test_mirrored_strategy_on_two_cpus_reaches_the_single_device_loss():
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    mirrored, single = runs["mirrored"], runs["default"]
    # two replicas really ran, each holding a copy of every weight, kept identical by the
    # all-reduce; each global batch of 32 was one step (8 steps per epoch, 8 epochs)
    assert mirrored["replicas"] == 2 and mirrored["copies"] == 2 and mirrored["in_sync"]
    assert single["replicas"] == 1 and single["copies"] == 1
    assert mirrored["steps"] == single["steps"] == 64
    # Both runs start from the same weights and see the same (seeded, stateless) batches; they
    # differ in the dropout masks (drawn per replica for half batches) and in the order of
    # the gradient sums. Single-device runs that differ only in their dropout seed
    # end within 0.1 of each other, and mirrored runs within 0.3 of single-device ones (loss
    # ~12.9 after 27.7 = 40 log 2 at the start); 1.0 is about 3 times the largest difference
    # seen. Training lowers the loss by more than 10 times that, and a loss summed instead of
    # averaged over the replicas would be off by a factor of 2.
    tolerance = 1.0
    for run in (mirrored, single):
        assert run["loss"][-1] < run["loss"][0] - 10 * tolerance, run["loss"]
    assert abs(mirrored["loss"][-1] - single["loss"][-1]) < tolerance, (mirrored, single)
