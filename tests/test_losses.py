import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from zoolib.cnn.losses import BinomialLoss, binomial_nll


def _random_votes(rng, size):
    n = rng.integers(0, 60, size=size).astype(np.float64)
    k = np.floor(rng.random(size) * (n + 1))
    logits = rng.normal(0, 3, size=size)
    return k, n, logits


def test_with_constant_equals_scipy_binom_logpmf(rng):
    k, n, logits = _random_votes(rng, (200, 3))
    got = binomial_nll(k, n, tf.constant(logits, tf.float64), include_constant=True).numpy()
    want = -stats.binom.logpmf(k, n, special.expit(logits))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_without_constant_drops_log_binomial_coefficient(rng):
    k, n, logits = _random_votes(rng, 500)
    got = binomial_nll(k, n, tf.constant(logits, tf.float64)).numpy()
    want = -stats.binom.logpmf(k, n, special.expit(logits)) + np.log(special.comb(n, k))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_single_vote_is_binary_cross_entropy(rng):
    k = rng.integers(0, 2, 100).astype(np.float32)
    logits = rng.normal(0, 2, 100).astype(np.float32)
    got = binomial_nll(k, np.ones_like(k), logits).numpy()
    bce = keras.losses.binary_crossentropy(k[:, None], logits[:, None], from_logits=True)
    np.testing.assert_allclose(got, np.asarray(bce), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("logit", [-50.0, 50.0])
@pytest.mark.parametrize("k_is", ["zero", "n"])
def test_finite_loss_and_gradient_at_extreme_logits(logit, k_is):
    n = tf.constant([40.0])
    k = tf.zeros_like(n) if k_is == "zero" else n
    x = tf.Variable([logit])
    with tf.GradientTape() as tape:
        loss = binomial_nll(k, n, x, include_constant=True)
    grad = tape.gradient(loss, x)
    assert np.isfinite(loss.numpy()).all() and np.isfinite(grad.numpy()).all()
    # d/dx = n sigmoid(x) - k
    np.testing.assert_allclose(grad.numpy(), 40 * special.expit(logit) - k.numpy(), atol=1e-4)


def test_zero_votes_give_zero_loss_and_zero_gradient():
    x = tf.Variable([-3.0, 0.0, 7.0])
    with tf.GradientTape() as tape:
        loss = binomial_nll([0, 0, 0], [0, 0, 0], x, include_constant=True)
    np.testing.assert_array_equal(loss.numpy(), 0.0)
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), 0.0)


@pytest.mark.parametrize(
    "k, n, message",
    [
        ([1, -1, 2], [3, 3, 3], "negative at index 1"),
        ([1, 2, 2], [3, -2, 3], "n (total votes) is negative at index 1"),
        ([1, 2, 5], [3, 3, 3], "exceeds n (total votes) at index 2"),
        ([np.nan, 1, 1], [3, 3, 3], "not finite at index 0"),
        ([1, 1, 1], [3, np.inf, 3], "n (total votes) is missing or not finite at index 1"),
        ([1, 2.5, 1], [3, 4, 3], "k (yes votes) is not a whole number at index 1"),
    ],
)
def test_bad_counts_raise_naming_the_index(k, n, message):
    with pytest.raises(ValueError) as err:
        binomial_nll(k, n, [0.0, 0.0, 0.0])
    assert message in str(err.value)


def test_bad_counts_in_2d_name_the_row_and_question():
    k = np.array([[1, 2], [4, 0]])
    n = np.array([[3, 3], [3, 3]])
    with pytest.raises(ValueError, match=r"index \(1, 0\)"):
        binomial_nll(k, n, np.zeros((2, 2)))


def test_graph_mode_counts_are_checked_by_assertions():
    @tf.function
    def f(k, n, x):
        return binomial_nll(k, n, x)

    with pytest.raises(tf.errors.InvalidArgumentError, match="exceeds"):
        f(tf.constant([5.0]), tf.constant([3.0]), tf.constant([0.0]))


def test_keras_loss_sums_questions_and_averages_batch(rng):
    k, n, logits = _random_votes(rng, (8, 3))
    y_true = np.stack([k, n], axis=-1).astype(np.float32)
    got = float(BinomialLoss()(y_true, logits.astype(np.float32)))
    per_item = -stats.binom.logpmf(k, n, special.expit(logits)) + np.log(special.comb(n, k))
    np.testing.assert_allclose(got, per_item.sum(axis=1).mean(), rtol=1e-5)


def test_keras_loss_serializes():
    loss = BinomialLoss(include_constant=True)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, BinomialLoss) and again.include_constant


def test_tree_nll_equals_the_numpy_multinomial_and_dirichlet_multinomial():
    from zoolib.cnn.losses import TreeLoss, concentrations, tree_nll
    from zoolib.votes import multinomial, trees

    tree = trees.GZ2.subset("two", ["smooth-or-featured", "disk-edge-on"])
    sizes = [len(n.answers) for n in tree.nodes]  # 3 + 2 answers side by side
    rng = np.random.default_rng(0)
    counts = np.concatenate([rng.multinomial(20, [0.5, 0.3, 0.2], 12),
                             rng.multinomial(8, [0.4, 0.6], 12)], axis=1).astype(float)  # fmt: skip
    counts[3, 3:] = 0  # not asked the second question
    x = rng.normal(0, 2, (12, 5)).astype(np.float64)
    got = tree_nll(counts, x, sizes, include_constant=True).numpy()
    got_dm = tree_nll(counts, x, sizes, "dirichlet_multinomial", include_constant=True).numpy()
    alpha = concentrations(x).numpy()
    for q, (a, b) in enumerate([(0, 3), (3, 5)]):
        p = np.exp(x[:, a:b]) / np.exp(x[:, a:b]).sum(-1, keepdims=True)
        want = -multinomial.multinomial_logpmf(counts[:, a:b], p)
        np.testing.assert_allclose(got[:, q], want, rtol=1e-6, atol=1e-6)
        want_dm = -multinomial.dirichlet_multinomial_logpmf(counts[:, a:b], alpha[:, a:b])
        np.testing.assert_allclose(got_dm[:, q], want_dm, rtol=1e-6, atol=1e-6)
    assert got[3, 1] == 0 and got_dm[3, 1] == 0
    loss = TreeLoss(sizes)(counts, x).numpy()
    assert loss == pytest.approx(tree_nll(counts, x, sizes).numpy().sum(-1).mean(), rel=1e-6)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        tree_nll(counts, x, sizes, "poisson")
    with pytest.raises(ValueError, match="is negative"):
        tree_nll(-counts, x, sizes)


def test_two_answer_multinomial_is_the_binomial_of_the_logit_difference():
    from zoolib.cnn.losses import tree_nll

    rng = np.random.default_rng(1)
    k = rng.integers(0, 11, 20).astype(float)
    n = np.full(20, 10.0)
    logits = rng.normal(0, 3, (20, 2))
    got = tree_nll(np.stack([k, n - k], -1), logits, [2]).numpy()[:, 0]
    want = binomial_nll(k, n, logits[:, 0] - logits[:, 1]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_votes_without_the_question_axis_are_refused_before_training():
    import keras

    from zoolib.cnn import models
    from zoolib.data import pipeline

    model = models.build_bayesian_cnn(16, 1, 1, filters=(4,) * 6, dense_units=8, seed=0)
    model.compile(optimizer="adam", loss=BinomialLoss())
    images = np.zeros((8, 16, 16, 1), np.uint8)
    flat = np.tile([[1.0, 2.0]], (8, 1))  # [k, N] without the question axis: it would broadcast
    with pytest.raises(ValueError, match=r"votes must be \(galaxies, questions, 2\)"):
        model.fit(pipeline.make_tf_dataset(images, flat, 4), epochs=1, verbose=0, shuffle=False)
    keras.backend.clear_session()
    model = models.build_bayesian_cnn(16, 1, 1, filters=(4,) * 6, dense_units=8, seed=0)
    model.compile(optimizer="adam", loss=BinomialLoss())
    model.fit(pipeline.make_tf_dataset(images, flat[:, None, :], 4), epochs=1, verbose=0,
              shuffle=False)
