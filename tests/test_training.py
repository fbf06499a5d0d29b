import csv
import json
import os
import socket
import subprocess
import sys
import time

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
_TOY_DATA = r"""
import numpy as np


def toy(n):
    rng = np.random.default_rng(0)
    level = rng.random(n)
    images = rng.normal(20 + 200 * level[:, None, None, None], 20, (n, 16, 16, 1))
    images = np.clip(images, 0, 255).astype(np.uint8)
    k = rng.binomial(40, 1 / (1 + np.exp(-10 * (level - 0.5))))
    votes = np.stack([k, np.full(n, 40)], axis=-1)[:, None, :].astype(np.float32)
    return images, votes
"""

# Run in a fresh interpreter: logical devices can only be configured before TensorFlow
# initialises its devices, which importing zoolib or running any other test already did.
_MIRRORED_SCRIPT = (
    _TOY_DATA
    + r"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from zoolib.data import processed, pipeline
from zoolib.cnn import models, training

images, votes = toy(256)


def run(strategy, loop="auto"):
    if loop == "custom":  # each replica reads and augments only its half of each batch
        ds = pipeline.dataset_fn(images, votes, global_batch_size=32, seed=0)
    else:
        ds = pipeline.make_tf_dataset(images, votes, batch_size=32, seed=0)  # global batch size
    with strategy.scope():
        history, _, model = training.train(
            lambda: models.build_bayesian_cnn(16, 1, 1, seed=0), ds, None, epochs=8,
            learning_rate=3e-3, seed=0, loop=loop,
        )
    copies = [strategy.experimental_local_results(v.value) for v in model.trainable_variables]
    in_sync = all(np.array_equal(c[0].numpy(), x.numpy()) for c in copies for x in c)
    seeds = [v for v in model.variables if v.path.endswith("seed_generator_state")][0]
    streams = {tuple(np.mod(x.numpy(), 2**31 - 2))  # the seeds the stateless ops get
               for x in strategy.experimental_local_results(seeds.value)}
    return dict(
        loss=history["loss"], replicas=strategy.num_replicas_in_sync,
        copies=min(len(c) for c in copies), in_sync=bool(in_sync),
        steps=int(model.optimizer.iterations.numpy()), dropout_streams=len(streams),
    )


print(json.dumps(dict(
    mirrored=run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
    # the multi-worker loop with two replicas in one worker (as on a cluster of GPU machines)
    mirrored_custom=run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), "custom"),
    default=run(tf.distribute.get_strategy()),
)))
"""
)


def _quiet_env():
    # oneDNN off: with it, a MultiWorkerMirroredStrategy worker fails on some CPUs ("input depth
    # must be evenly divisible by filter depth: 1 vs 32", AMD EPYC, TensorFlow 2.21; measured
    # 2026-11-30, also on the commit before; passes with it off). docs/performance.md says so.
    return {
        **os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
        "TF_ENABLE_ONEDNN_OPTS": "0",
    }  # fmt: skip


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_reaches_the_single_device_loss():
    proc = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT], capture_output=True, text=True,
        env=_quiet_env(), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    single = runs["default"]
    assert single["replicas"] == 1 and single["copies"] == 1
    for mirrored in (runs["mirrored"], runs["mirrored_custom"]):
        # two replicas really ran, each holding a copy of every weight, kept identical by the
        # all-reduce; each global batch of 32 was one step (8 steps per epoch, 8 epochs)
        assert mirrored["replicas"] == 2 and mirrored["copies"] == 2 and mirrored["in_sync"]
        # ... while each replica draws its own dropout masks
        assert mirrored["dropout_streams"] == 2
        assert mirrored["steps"] == single["steps"] == 64
        # Both runs start from the same weights and see the same (seeded, stateless) batches;
        # they differ in the dropout masks (drawn per replica for half batches) and in the
        # order of the gradient sums. Single-device runs that differ only in their dropout
        # seed end within 0.1 of each other, and mirrored runs within 0.3 of single-device
        # ones (loss ~12.9 after 27.7 = 40 log 2 at the start); 1.0 is about 3 times the
        # largest difference seen. Training lowers the loss by more than 10 times that, and
        # a loss summed instead of averaged over the replicas would be off by a factor of 2.
        tolerance = 1.0
        for run in (mirrored, single):
            assert run["loss"][-1] < run["loss"][0] - 10 * tolerance, run["loss"]
        assert abs(mirrored["loss"][-1] - single["loss"][-1]) < tolerance, (mirrored, single)


# One worker of a cluster described by TF_CONFIG (argv: index, comma-separated ports or "" for
# no cluster, output folder). 257 training galaxies in global batches of 32: the last batch
# holds one galaxy, so one worker's part of it is empty. Two trainings: the paper's model
# (MC dropout, augmentation, early stopping, checkpoint and log), then an exactly repeatable
# one (no dropout, no augmentation) whose weights are saved for comparison.
_WORKER_SCRIPT = (
    _TOY_DATA
    + r"""
import json
import os
import sys

index, ports, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if ports:
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"localhost:{port}" for port in ports.split(",")]},
        "task": {"type": "worker", "index": index},
    })
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(1)
# the strategy first: collectives must be set up before TensorFlow runs anything
strategy = tf.distribute.MultiWorkerMirroredStrategy() if ports else tf.distribute.get_strategy()
from zoolib.data import processed, pipeline
from zoolib.cnn import models, training

images, votes = toy(257 + 64)
train_fn = pipeline.dataset_fn(images[:257], votes[:257], global_batch_size=32, seed=0)
val_fn = pipeline.dataset_fn(images[257:], votes[257:], 64, shuffle=False, augment_images=False)
with strategy.scope():
    history, path, model = training.train(
        lambda: models.build_bayesian_cnn(16, 1, 1, seed=0), train_fn, val_fn, epochs=8,
        learning_rate=3e-3, patience=8, model_path=os.path.join(out, "best.keras"),
        log_dir=out, seed=0,
    )
files = sorted(os.listdir(out))
seeds = [v for v in model.variables if v.path.endswith("seed_generator_state")][0].numpy()
seeds = np.mod(seeds, 2**31 - 2)  # the seed pair TensorFlow's stateless ops get from Keras

# exact: without dropout or augmentation, the same maths as one process, so the same weights
# up to rounding. Plain SGD, whose steps scale with the gradient (Adam's barely do), so a
# wrongly scaled loss shows. Validation on a plain make_tf_dataset (batches 24 + 24 + 16),
# which TensorFlow shards by itself. Then a small model with an L2 penalty.
def exact_run(name, build, learning_rate):
    train_ds = pipeline.dataset_fn(images[:257], votes[:257], 32, seed=0, augment_images=False)
    val_ds = pipeline.make_tf_dataset(images[257:], votes[257:], 24, shuffle=False,
                                  augment_images=False)
    with strategy.scope():
        hist, _, fitted = training.train(
            build, train_ds, val_ds, epochs=2, learning_rate=learning_rate, seed=0,
            optimizer="sgd",
        )
    np.savez(f"{out}.{name}.npz", *fitted.get_weights())
    return hist


def penalised():
    import keras

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    dense = keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(1.0))
    return keras.Model(inputs, dense(x))


no_dropout = dict(dropout_rate=0.0, seed=0)
exact = {
    "cnn": exact_run("cnn", lambda: models.build_bayesian_cnn(16, 1, 1, **no_dropout), 1e-3),
    "l2": exact_run("l2", penalised, 1e-3),
}


def fingerprint(weights):
    return [float(np.sum(np.abs(w), dtype=np.float64)) for w in weights]


saved = fingerprint(models.load_model(path).get_weights()) if "best.keras" in files else None
print(json.dumps(dict(
    history=history, replicas=strategy.num_replicas_in_sync, files=files,
    steps=int(model.optimizer.iterations.numpy()), weights=fingerprint(model.get_weights()),
    saved=saved, dropout_seed_state=seeds.tolist(), exact=exact,
)))
"""
)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _run_together(script, argvs, folder, timeout=900):
    """Run ``python -c script *argv`` for each argv at once; (return codes, stdouts, stderrs).

    All are stopped at one deadline, and as soon as one fails (its peers would wait for it).
    """
    procs, logs = [], []
    try:
        for i, argv in enumerate(argvs):
            out, err = open(folder / f"{i}.out", "w+"), open(folder / f"{i}.err", "w+")
            logs.append((out, err))
            procs.append(subprocess.Popen(
                [sys.executable, "-c", script, *argv], stdout=out, stderr=err, text=True,
                env=_quiet_env(),
            ))  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in procs]
            if all(code is not None for code in codes) or any(codes):
                break
            time.sleep(0.5)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    texts = []
    for out, err in logs:
        out.seek(0), err.seek(0)
        texts.append((out.read(), err.read()))
        out.close(), err.close()
    return [proc.returncode for proc in procs], [t[0] for t in texts], [t[1] for t in texts]


@pytest.mark.slow
def test_multi_worker_strategy_trains_two_local_workers_in_step(tmp_path):
    """Two worker processes on localhost (one CPU replica each) train one model together."""
    for attempt in range(2):  # the free ports found may be taken before the workers bind them
        ports = ",".join(str(p) for p in _free_ports(2))
        outs = [tmp_path / f"{name}{attempt}" for name in ("chief", "worker", "single")]
        for out in outs:
            out.mkdir()
        argvs = [
            ("0", ports, str(outs[0])),
            ("1", ports, str(outs[1])),
            ("0", "", str(outs[2])),
        ]  # fmt: skip  (the last: the one-process reference)
        codes, stdouts, stderrs = _run_together(_WORKER_SCRIPT, argvs, tmp_path)
        taken = ("already in use", "Could not start gRPC server")
        if all(code == 0 for code in codes) or not any(t in "".join(stderrs) for t in taken):
            break
    report = "\n".join(f"--- process {i} (exit {c}):\n{e[-2000:]}" for i, (c, e) in
                       enumerate(zip(codes, stderrs, strict=True)))  # fmt: skip
    assert codes == [0, 0, 0], report
    chief, worker, single = (json.loads(out.strip().splitlines()[-1]) for out in stdouts)
    assert chief["replicas"] == worker["replicas"] == 2 and single["replicas"] == 1
    # all-reduced logs: both workers saw the same epoch losses, so early stopping (a function
    # of them) stops both at the same epoch, and they hold the same restored weights
    assert chief["history"] == worker["history"]
    assert chief["weights"] == worker["weights"]
    # each worker's replica draws its own dropout masks (different effective seeds)
    assert chief["dropout_seed_state"][0] != worker["dropout_seed_state"][0]
    # 257 galaxies in global batches of 32 are 9 steps per epoch, each step taken together
    for run in (chief, worker, single):
        assert run["steps"] == 9 * len(run["history"]["loss"]), run
    # only the chief wrote the checkpoint (the restored best weights) and the log
    assert chief["files"] == single["files"] == ["best.keras", "training_log.csv"]
    assert worker["files"] == []
    assert chief["saved"] == chief["weights"]
    # The loss scaling: without dropout and augmentation the two workers compute the
    # one-process fit's gradient of the global batch mean, split in two sums, and SGD steps
    # scale with it, so they must reach its weights up to rounding (and hold identical ones).
    # Dividing by a replica's own part size, or summing the replicas' means, would double
    # every step but the last; a penalty not shared out between the replicas would double
    # its pull; a validation set not covered exactly once (the plain dataset sharded by
    # TensorFlow, with a short last batch) would move the validation loss. Rounding leaves
    # the weights within 1e-7 of each other (seen); breaking the loop on purpose moved them
    # by 0.018 (CNN) and 0.089 (penalised model) when dividing by the part size, and by
    # 0.005 when every replica added the whole penalty.
    for name in ("cnn", "l2"):
        chief_w, worker_w, single_w = (np.load(f"{out}.{name}.npz") for out in outs)
        for w in single_w.files:
            np.testing.assert_array_equal(worker_w[w], chief_w[w])
            np.testing.assert_allclose(chief_w[w], single_w[w], rtol=1e-5, atol=1e-5)
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose(chief["exact"][name][key], single["exact"][name][key],
                                       rtol=1e-5)  # fmt: skip
    # With MC dropout the runs differ in their masks only: the best validation NLL (the
    # weights kept) agrees within 1.0, about 3 times the gap between runs that differ only
    # in their dropout masks (as in the MirroredStrategy test), after training lowered it by
    # more than 5 times that.
    tolerance = 1.0
    for run in (chief, single):
        val = run["history"]["val_loss"]
        assert min(val) < val[0] - 5 * tolerance, val
    assert abs(min(chief["history"]["val_loss"]) - min(single["history"]["val_loss"])) < tolerance


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
