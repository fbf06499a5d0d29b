"""SimCLR and multi-task trunk training (zoolib.cnn.contrastive), against brute-force references."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.signal import convolve2d

from zoolib.cnn import contrastive, models
from zoolib.data import pipeline


def brute_nt_xent(z1, z2, temperature):
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n, total = len(z), 0.0
    for i in range(n):
        twin = (i + n // 2) % n
        others = [np.exp(z[i] @ z[j] / temperature) for j in range(n) if j != i]
        total += -np.log(np.exp(z[i] @ z[twin] / temperature) / sum(others))
    return total / n


@pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
def test_nt_xent_matches_a_brute_force_loop(temperature):
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    got = float(contrastive.nt_xent(z1, z2, temperature))
    assert got == pytest.approx(brute_nt_xent(z1, z2, temperature), rel=1e-5)


def test_nt_xent_is_small_when_twins_agree_and_others_differ():
    z = np.eye(4) * 3.0
    assert float(contrastive.nt_xent(z, z, 0.05)) < 1e-6
    assert float(contrastive.nt_xent(z, z[::-1], 0.05)) > 5.0  # each twin is another galaxy


def test_blur_is_the_gaussian_convolution_of_each_image():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (3, 12, 12, 2)).astype(np.float32)
    sigmas = np.array([0.5, 1.0, 2.0], np.float32)
    got = contrastive.blur(tf.constant(images), tf.constant(sigmas)).numpy()
    offsets = np.arange(-2, 3)
    for b, sigma in enumerate(sigmas):
        g = np.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = np.outer(g, g) / np.outer(g, g).sum()
        for c in range(2):
            want = convolve2d(images[b, :, :, c], kernel, mode="same")  # zero padding, like SAME
            np.testing.assert_allclose(got[b, :, :, c], want, rtol=1e-4, atol=1e-3)


def test_a_tiny_blur_leaves_the_image():
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 1)).astype(np.float32)
    got = contrastive.blur(tf.constant(images), tf.constant([1e-4, 1e-4])).numpy()
    np.testing.assert_allclose(got, images, atol=1e-3)


def test_views_repeat_with_their_seed_and_add_only_blur_and_noise_to_augment():
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 1)), tf.float32)
    seed = tf.constant([3, 4], tf.int64)
    a, b = contrastive.views(images, seed), contrastive.views(images, seed)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = contrastive.views(images, tf.constant([3, 5], tf.int64)).numpy()
    assert not np.allclose(a.numpy(), other)
    assert a.shape == images.shape and a.numpy().min() >= 0 and a.numpy().max() <= 255
    plain = contrastive.views(images, seed, noise=0.0, psf=0.0).numpy()
    first = tf.random.experimental.stateless_split(seed, 4)[0]
    np.testing.assert_allclose(plain, pipeline.augment(images, first).numpy(), atol=1e-4)


def test_balance_gives_each_class_of_a_task_the_same_total_weight():
    k = np.array([1, 1, 1, 0, 0, 0], np.float32)
    n = np.array([1, 1, 1, 1, 0, 0], np.float32)
    votes = np.stack([np.stack([k, n], -1), np.stack([k, n * 0], -1)], 1)  # task 2: no labels
    out = contrastive.balance(votes)
    yes, no = out[:3, 0, 1].sum(), out[3, 0, 1]
    assert yes == pytest.approx(no) == pytest.approx(2.0)  # 4 labelled rows, 2 per class
    np.testing.assert_array_equal(out[:, 0, 0], out[:, 0, 1] * k)  # k scaled with N
    np.testing.assert_array_equal(out[:, 1], votes[:, 1])
    np.testing.assert_array_equal(out[4:], votes[4:])


@pytest.mark.parametrize("bad", [dict(batch_size=1), dict(temperature=0.0), dict(blur=-1.0),
        dict(blur=1.5),
                                 dict(contrastive_weight=0.0, supervised_weight=0.0)])
def test_settings_refuse_what_cannot_train(bad):
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        contrastive.Settings(**bad)


def tiny(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 60, (64, 16, 16, 1)).astype(np.float32)
    bright = np.arange(64) < 32
    x[bright, 4:12, 4:12] += 150  # task 0: "is there a bright blob"
    votes = np.zeros((64, 2, 2), np.float32)
    votes[:48, 0] = np.stack([bright[:48], np.ones(48)], -1)  # the last 16 have no label
    return x, votes, bright


def trunk(seed=0):
    keras.utils.set_random_seed(seed)
    return models.build_trunk(16, 1, (4, 4, 4, 4, 8, 8), 8, dense_activation="leaky_relu")


def test_multitask_training_learns_a_label_and_ignores_unlabelled_rows():
    x, votes, bright = tiny()
    settings = contrastive.Settings(epochs=20, batch_size=16, learning_rate=1e-2,
                                    precision="float32", contrastive_weight=0.0, noise=0.0,
                                    blur=0.0)  # fmt: skip
    t = trunk()
    head, history = contrastive.train(t, x, votes, settings, log=lambda _: None)
    assert history["loss"][-1] < history["loss"][0]
    assert history["contrastive"] == [0.0] * 20
    logits = head.predict(t.predict(x[:48], verbose=0), verbose=0)[:, 0]
    assert logits[bright[:48]].mean() > logits[~bright[:48]].mean() + 0.5  # it learned the blob
    other = x.copy()
    other[48:] = np.random.default_rng(9).uniform(0, 255, other[48:].shape)  # N = 0 rows
    t2 = trunk()
    head2, _ = contrastive.train(t2, other, votes, settings, log=lambda _: None)
    for a, b in zip(t.get_weights() + head.get_weights(), t2.get_weights() + head2.get_weights(),
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, atol=1e-6)  # unlabelled images taught it nothing


def test_simclr_runs_without_labels_and_its_loss_falls():
    x, _, _ = tiny()
    settings = contrastive.Settings(epochs=4, batch_size=32, learning_rate=3e-3,
                                    supervised_weight=0.0, precision="float32")  # fmt: skip
    head, history = contrastive.train(trunk(), x, np.zeros((64, 0, 2)), settings,
                                      log=lambda _: None)  # fmt: skip
    assert history["supervised"] == [0.0] * 4
    assert history["contrastive"][-1] < history["contrastive"][0]
    assert head.output_shape == (None, 1)


def test_train_refuses_mismatched_votes_and_too_few_images():
    x, votes, _ = tiny()
    with pytest.raises(ValueError, match="votes must be"):
        contrastive.train(trunk(), x, votes[:10], contrastive.Settings(batch_size=16))
    with pytest.raises(ValueError, match="fewer than batch_size"):
        contrastive.train(trunk(), x, votes, contrastive.Settings(batch_size=128))
